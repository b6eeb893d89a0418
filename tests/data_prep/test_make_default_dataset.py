from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from fastmri.data import SliceDataset

from data_prep.make_default_dataset import build, split_train_val
from data_prep.split import read_split
from data_prep.templates import Template
from mridiff.data.fastmri_h5 import open_scan
from mridiff.errors import InputError


def test_split_train_val_disjoint_with_gap():
    idx = np.arange(10, 60)
    parts = split_train_val(idx, fraction=0.1, gap=4)
    assert len(parts["val"]) == 5
    assert not set(parts["val"]) & set(parts["train"])
    dist = np.min(np.abs(parts["train"][:, None] - parts["val"][None, :]))
    assert dist > 4


@pytest.fixture
def sources(tmp_path, data_helpers):
    out = []
    for key, role, shape in (("tplA", "train", (40, 40, 30)), ("subj", "test", (36, 40, 12))):
        path = tmp_path / f"{key}.nii.gz"
        nib.save(nib.Nifti1Image(data_helpers.blob_volume(shape), np.diag([1.0, 1.0, 1.5, 1.0])), path)
        out.append(Template(key, path, role, f"fake {key}", "test fixture", "none"))
    return out


def test_build_layout_and_disjoint_splits(tmp_path, sources):
    root = tmp_path / "ds"
    record = build(root, sources, size=32, coils=2, snr_db=30.0, seed=1)
    for variant in ("singlecoil", "multicoil"):
        names = {}
        for split in ("train", "val", "test"):
            d = root / f"{variant}_{split}"
            ds = SliceDataset(d, challenge=variant)
            assert len(ds) > 0
            names[split] = sorted(p.name for p in d.glob("*.h5"))
            assert names[split] == read_split(root / "splits" / f"{split}.txt")
            for p in d.glob("*.h5"):
                info = open_scan(p)
                assert info.multicoil == (variant == "multicoil") and info.recon_size == (32, 32)
        assert names["test"] == ["subj.h5"]
    train = open_scan(root / "singlecoil_train" / "tplA.h5").attrs["source_slice_index"]
    val = open_scan(root / "singlecoil_val" / "tplA_val.h5").attrs["source_slice_index"]
    assert not set(train) & set(val)
    prov = json.loads((root / "provenance.json").read_text())
    assert prov == json.loads(json.dumps(record))
    assert {s["key"]: s["role"] for s in prov["sources"]} == {"tplA": "train", "subj": "test"}
    assert all(len(s["sha256"]) == 64 for s in prov["sources"])
    with pytest.raises(InputError, match="already exists"):
        build(root, sources, size=32, coils=2)

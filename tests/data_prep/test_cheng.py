"""data_prep.cheng: split rule, area resize, boxes, decode failures, fastMRI-layout outputs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset
from PIL import Image

from data_prep.cheng import load_slice, main, make_split, read_box
from tests.helpers import fake_cheng_source as fake_source


def test_split_follows_the_data_readme(tmp_path: Path) -> None:
    split = make_split(fake_source(tmp_path / "src"))
    assert all(n.startswith("meningioma/") for n in split.test) and len(split.test) == 10
    # validation = the highest-numbered 10 % of each training folder
    assert split.val == ["glioma/20.jpg", "pituitary/30.jpg"]
    assert not set(split.train) & set(split.val) and not set(split.train) & set(split.test)
    assert len(split.train) == 18 and not any(n.startswith("meningioma/") for n in split.train)


def test_area_resize_is_the_2x2_block_mean(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = load_slice(tmp_path / "a.png", 4)
    np.testing.assert_allclose(out, arr.astype(np.float32).reshape(4, 2, 4, 2).mean(axis=(1, 3)))


def test_box_in_output_pixels(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("1 0.5 0.25 0.2 0.1\n")
    assert read_box(tmp_path / "b.txt", 100) == [20, 40, 30, 60]
    (tmp_path / "c.txt").write_text("garbage")
    assert read_box(tmp_path / "c.txt", 100) is None


def test_prepare_writes_readable_files_and_skips_bad_jpegs(tmp_path: Path) -> None:
    src = fake_source(tmp_path / "src")
    (src / "glioma" / "15.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="15.jpg: cannot decode image"):
        assert main([str(out), "--source", str(src), "--size", "32", "--coils", "4"]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["failed_to_decode"] == ["glioma/15.jpg"]
    assert prov["label"] == "real clinical images, simulated k-space"
    assert (out / "splits" / "test.txt").read_text().split() == [f"meningioma/{i}.jpg" for i in range(1, 11)]
    with h5py.File(out / "train_images.h5", "r") as fh:
        assert fh["images"].shape == (17, 32, 32) and fh["images"].dtype == np.uint16
        assert b"glioma/15.jpg" not in list(fh["names"][:])
    # fastMRI's own reader opens both variants; targets equal |ifft2c(kspace)| / RSS
    for variant, challenge in (("singlecoil", "singlecoil"), ("multicoil", "multicoil")):
        ds = SliceDataset(out / f"{variant}_test", challenge=challenge)
        assert len(ds) == 10
        with h5py.File(out / f"{variant}_test" / "meningioma_1.h5", "r") as fh:
            assert list(fh.attrs["tumor_box"]) == [6, 12, 10, 20]
            assert fh.attrs["simulated"]
    boxes = json.loads((out / "boxes.json").read_text())
    assert boxes["meningioma/1.jpg"] == [6, 12, 10, 20]
    # rerun without --overwrite refuses with one line
    assert main([str(out), "--source", str(src), "--size", "32"]) == 2

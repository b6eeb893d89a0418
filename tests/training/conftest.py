from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from data_prep.nifti_to_fastmri import main as nifti_to_fastmri
from mridiff.config import RunConfig, config_from_dict

TINY_MODEL = {"channels": [8, 16], "attention_levels": [False, True], "num_head_channels": 8, "norm_num_groups": 4}


def _volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    vol = np.where((x / 0.8) ** 2 + (y / 0.7) ** 2 + (z / 1.6) ** 2 < 1, 1.0, 0.0)
    vol *= 80 + 30 * np.cos(5 * x + rng.uniform(0, 3)) * np.sin(4 * y)
    return vol.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two single-coil volumes (train) and one multi-coil volume, 32x32, 4 slices each, via data_prep."""
    root = tmp_path_factory.mktemp("tinydata")
    for i, name in enumerate(["vol_a", "vol_b"]):
        path = root / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(_volume((40, 40, 6), i), np.eye(4)), path)
        assert nifti_to_fastmri([str(path), str(root / "sc"), "--coils", "1", "--size", "32"]) == 0
    assert nifti_to_fastmri([str(root / "vol_a.nii.gz"), str(root / "mc"), "--coils", "4", "--size", "32"]) == 0
    return {"singlecoil": root / "sc", "multicoil": root / "mc", "root": root}


def tiny_config(data_root: Path, out_dir: Path, **train: object) -> RunConfig:
    settings = {"batch_size": 2, "max_steps": 2, "ckpt_every": 1, "val_every": 0, "precision": "32-true",
                "num_workers": 0, "log_every": 1}
    settings.update(train)
    return config_from_dict({"task": "recon", "out_dir": str(out_dir), "data": {"root": str(data_root)},
                             "model": TINY_MODEL, "train": settings})

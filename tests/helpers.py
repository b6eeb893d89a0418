"""Test helpers shared across test packages (configs and tiny models); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mridiff.config import RunConfig, config_from_dict
from mridiff.models.unet import UNetConfig

TINY_MODEL = {"channels": [8, 16], "attention_levels": [False, True], "num_head_channels": 8, "norm_num_groups": 4}
TINY = UNetConfig.from_dict(TINY_MODEL)


def tiny_meta(task: str = "recon", cfg: UNetConfig = TINY) -> dict[str, object]:
    """Metadata for an exported tiny model."""
    return {"task": task, "model": cfg.to_dict(),
            "diffusion": {"timesteps": 1000, "schedule": "linear", "prediction": "epsilon"},
            "normalisation": {"method": "percentile", "q": 99.0}, "training": {"image_size": [32, 32]}}


def tiny_config(data_root: Path, out_dir: Path, **train: object) -> RunConfig:
    """A CPU training config for the tiny dataset: 2 steps, checkpoint every step."""
    settings = {"batch_size": 2, "max_steps": 2, "ckpt_every": 1, "val_every": 0, "precision": "32-true",
                "num_workers": 0, "log_every": 1}
    settings.update(train)
    return config_from_dict({"task": "recon", "out_dir": str(out_dir), "data": {"root": str(data_root)},
                             "model": TINY_MODEL, "train": settings})


def head_volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """An ellipsoid 'head' with seeded texture, zero background."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    vol = np.where((x / 0.8) ** 2 + (y / 0.7) ** 2 + (z / 1.6) ** 2 < 1, 1.0, 0.0)
    vol *= 80 + 30 * np.cos(5 * x + rng.uniform(0, 3)) * np.sin(4 * y)
    return vol.astype(np.float32)


def fake_cheng_source(root: Path, per_folder: int = 10, side: int = 64) -> Path:
    """Three tumour folders of numbered JPEGs (with box files), numbers unique across folders like the release."""
    number = 1
    for folder, label in (("meningioma", 1), ("glioma", 2), ("pituitary", 0)):
        (root / folder).mkdir(parents=True)
        for _ in range(per_folder):
            img = head_volume((side, side, 3), number)[:, :, 1]
            Image.fromarray((255 * img / img.max()).astype(np.uint8)).save(root / folder / f"{number}.jpg")
            (root / folder / f"{number}.txt").write_text(f"{label} 0.5 0.25 0.2 0.1\n")
            number += 1
    return root

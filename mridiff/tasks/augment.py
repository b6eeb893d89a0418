"""Augmentation task: unconditional generation of magnitude slices (no operator, no condition)."""

from __future__ import annotations

import numpy as np
import torch

from mridiff.tasks.recon import full_image, percentile_scale


def training_example(
    full_kspace: np.ndarray, sens: np.ndarray | None, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """A normalised magnitude slice (float32 (H, W)), scaled so its 99th percentile is 1."""
    k = torch.from_numpy(np.ascontiguousarray(full_kspace)).to(torch.complex64)
    maps = torch.from_numpy(sens).to(torch.complex64) if sens is not None else None
    mag = full_image(k, maps).abs()
    if rng.random() < 0.5:
        mag = torch.flip(mag, dims=(-1,))  # left-right flips: brains are near-symmetric, data are few
    return {"target": (mag / percentile_scale(mag)).float()}

"""Augmentation task: unconditional generation of magnitude slices (no operator, no condition)."""

from __future__ import annotations

import numpy as np
import torch

from mridiff.data.transforms import percentile_scale
from mridiff.tasks.problem import Example, InverseProblem
from mridiff.tasks.recon import full_image


def training_example(full_kspace: np.ndarray, sens: np.ndarray | None, rng: np.random.Generator) -> Example:
    """A normalised magnitude slice (float32 (H, W)), scaled so its 99th percentile is 1."""
    k = torch.from_numpy(np.ascontiguousarray(full_kspace)).to(torch.complex64)
    maps = torch.from_numpy(sens).to(torch.complex64) if sens is not None else None
    mag = full_image(k, maps).abs()
    if rng.random() < 0.5:
        mag = torch.flip(mag, dims=(-1,))  # left-right flips: brains are near-symmetric, data are few
    return {"target": (mag / percentile_scale(mag)).float()}


def generation_problem(count: int, image_shape: tuple[int, int]) -> InverseProblem:
    """``count`` problems with nothing measured: samples come from the prior alone, in normalised units."""
    return InverseProblem(operator=None, y=None, cond=None, scale=torch.ones(count), image_shape=image_shape)


def validation_problem(batch: Example) -> None:
    """No validation problem: unconditional samples have no per-slice ground truth."""
    return None

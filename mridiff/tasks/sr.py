"""Super-resolution task: a low-resolution MRI is the centre of k-space.

Operator: :class:`~mridiff.physics.operators.KspaceCrop` (keep the central (H/f, W/f) block). Condition:
A^H y, the low-resolution image zero-padded in k-space to the target grid (sinc interpolation). Data
consistency keeps the measured centre exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from mridiff.physics.operators import KspaceCrop
from mridiff.tasks.recon import full_image, percentile_scale

Problem = tuple[KspaceCrop, torch.Tensor, torch.Tensor, torch.Tensor]


def _normalise(op: KspaceCrop, y: torch.Tensor) -> Problem:
    cond = op.adjoint(y)
    scale = torch.tensor([percentile_scale(c) for c in cond], dtype=torch.float32)
    s = scale.to(y.device).reshape(-1, 1, 1)
    return op, y / s, cond / s, scale


def sr_problem(image: torch.Tensor, factor: int) -> Problem:
    """Simulate the low-resolution acquisition of a high-resolution image.

    Args:
        image: complex64 (B, H, W) high-resolution image(s).
        factor: scale factor; must divide H and W.

    Returns:
        (operator, y normalised, condition normalised, per-slice scales (B,)).

    """
    op = KspaceCrop(factor, (image.shape[-2], image.shape[-1]))
    return _normalise(op, op.forward(image))


def lowres_problem(kspace_lr: torch.Tensor, factor: int) -> Problem:
    """The problem for a measured low-resolution k-space block (B, h, w): the target grid is (f h, f w)."""
    op = KspaceCrop(factor, (kspace_lr.shape[-2] * factor, kspace_lr.shape[-1] * factor))
    return _normalise(op, kspace_lr)


def training_example(
    full_kspace: np.ndarray, sens: np.ndarray | None, rng: np.random.Generator, *, scales: list[int]
) -> dict[str, torch.Tensor]:
    """A super-resolution training pair from a fully sampled slice, with a random scale from ``scales``."""
    k = torch.from_numpy(np.ascontiguousarray(full_kspace)).to(torch.complex64)
    maps = torch.from_numpy(sens).to(torch.complex64) if sens is not None else None
    image = full_image(k, maps)
    factor = scales[int(rng.integers(len(scales)))]
    _, _, cond, scale = sr_problem(image.unsqueeze(0), factor)
    return {"target": image / float(scale[0]), "cond": cond[0]}

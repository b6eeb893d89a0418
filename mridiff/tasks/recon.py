"""Reconstruction task: the normalised inverse problem of a batch of undersampled k-space slices.

The diffusion state is the complex image on the full acquired grid: the image itself for single-coil data,
the SENSE combination sum_c conj(S_c) x_c for multi-coil data. The condition is A^H y, which is the
zero-filled image for single-coil and the coil-combined zero-filled image for multi-coil, so one network
serves both. :func:`build_problem` makes the problem for training examples and for inference alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from mridiff.data.transforms import percentile_scale
from mridiff.physics.coils import estimate_sens, sense_combine
from mridiff.physics.fft import ifft2c
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.physics.operators import MultiCoil, Operator, SingleCoil
from mridiff.tasks.problem import Example, InverseProblem
from mridiff.utils import per_sample


def build_problem(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    sens: torch.Tensor | None = None,
    full_kspace: torch.Tensor | None = None,
    noise_std: torch.Tensor | None = None,
) -> InverseProblem:
    """Build the normalised problems for a batch of slices.

    Args:
        kspace: k-space, complex64 (B, H, W) single-coil or (B, C, H, W) multi-coil (with ``sens``).
            Unmeasured samples are ignored.
        mask: sampling masks, float (B, H, W) or (H, W), 1 where measured.
        sens: coil maps (B, C, H, W) for multi-coil data.
        full_kspace: fully sampled k-space shaped like ``kspace``, when a ground truth exists.
        noise_std: per-slice k-space noise std (B,) in input units, when known (soft data consistency).

    Returns:
        The problems, with ``target`` set when ``full_kspace`` is given.

    """
    operator: Operator
    if sens is not None:
        m = mask if mask.ndim == 3 else mask.expand(kspace.shape[0], *mask.shape)
        operator = MultiCoil(m, sens)
        y = kspace * m.unsqueeze(1)
    else:
        operator = SingleCoil(mask)
        y = kspace * mask
    cond = operator.adjoint(y)
    scale = torch.tensor([percentile_scale(c) for c in cond], dtype=torch.float32)
    target = None
    if full_kspace is not None:
        images = ifft2c(full_kspace)
        target = sense_combine(images, sens) if sens is not None else images
        target = target / per_sample(scale, target)
    noise_var = None if noise_std is None else (noise_std.float() / scale) ** 2
    return InverseProblem(operator=operator, y=y / per_sample(scale, y), cond=cond / per_sample(scale, cond),
                          scale=scale, noise_var=noise_var, target=target)


MASK_BANK_SIZE = 64
_MASK_BANK: dict[tuple[str, int, tuple[int, int]], list[torch.Tensor]] = {}


def random_mask(
    shape: tuple[int, int], kinds: list[str], accelerations: list[int], rng: np.random.Generator
) -> torch.Tensor:
    """Draw a training mask: a random kind and acceleration from the config, fastMRI's centre fractions.

    2D Poisson-disc masks take ~0.1 s each to draw, too slow to feed a GPU, so each (kind, acceleration, shape)
    keeps a bank of ``MASK_BANK_SIZE`` seeded masks per worker, filled on first use and then sampled from.
    """
    kind = kinds[int(rng.integers(len(kinds)))]
    acc = accelerations[int(rng.integers(len(accelerations)))]
    bank = _MASK_BANK.setdefault((kind, acc, shape), [])
    if len(bank) < MASK_BANK_SIZE:
        for attempt in range(3):
            try:
                bank.append(make_mask(MaskSpec(kind, acc), shape, int(rng.integers(2**31 - 1))))
                return bank[-1]
            except ValueError as exc:  # a random 2D mask can miss its acceleration on a small grid
                if attempt == 2 and not bank:
                    raise
                warnings.warn(f"training mask draw failed ({exc}); drawing again", stacklevel=2)
    return bank[int(rng.integers(len(bank)))]


def full_image(full_kspace: torch.Tensor, sens: torch.Tensor | None) -> torch.Tensor:
    """The complex image of one fully sampled slice: the image (single-coil) or SENSE combination (multi-coil).

    Args:
        full_kspace: complex ``(H, W)`` single-coil or ``(C, H, W)`` multi-coil k-space.
        sens: coil maps ``(C, H, W)``; ``None`` estimates low-resolution maps from the full k-space.

    Returns:
        complex ``(H, W)``.

    """
    images = ifft2c(full_kspace)
    if full_kspace.ndim == 2:
        return images
    if sens is None:
        sens = estimate_sens(full_kspace, torch.ones(full_kspace.shape[-2:], dtype=torch.float32), "lowres")
    return sense_combine(images, sens)


def training_example(
    full_kspace: np.ndarray,
    sens: np.ndarray | None,
    rng: np.random.Generator,
    *,
    kinds: list[str],
    accelerations: list[int],
) -> Example:
    """A training pair from a fully sampled slice: a random mask, then (target, condition), both normalised.

    Args:
        full_kspace: complex (H, W) or (C, H, W) fully sampled k-space.
        sens: coil maps (C, H, W) when known (e.g. stored by ``data_prep``); estimated from the ACS otherwise.
        rng: numpy generator (seeded per worker).
        kinds: mask kinds to draw from.
        accelerations: accelerations to draw from.

    Returns:
        ``{"target": complex64 (H, W), "cond": complex64 (H, W), "mask": float32 (H, W)}``.

    """
    k = torch.from_numpy(np.ascontiguousarray(full_kspace)).to(torch.complex64)
    mask = random_mask((k.shape[-2], k.shape[-1]), kinds, accelerations, rng)
    maps = None
    if k.ndim == 3:
        maps = torch.from_numpy(sens).to(torch.complex64) if sens is not None else estimate_sens(k, mask, "lowres")
        maps = maps.unsqueeze(0)
    problem = build_problem(k.unsqueeze(0), mask, maps, full_kspace=k.unsqueeze(0))
    assert problem.target is not None and problem.cond is not None
    return {"target": problem.target[0], "cond": problem.cond[0], "mask": mask}


def validation_problem(batch: Example) -> InverseProblem:
    """The problem of a collated batch of training examples, for validation sampling.

    Data consistency acts on the single-coil equivalent problem ``y = M F x`` of the normalised target (exact for
    single-coil data; the example keeps no coil maps).
    """
    target = batch["target"]
    operator = SingleCoil(batch["mask"])
    return InverseProblem(operator=operator, y=operator.forward(target), cond=batch.get("cond"),
                          scale=torch.ones(target.shape[0]), target=target)

"""Super-resolution of low-resolution MRI slices with a conditional DDPM: the Python API, baselines and affines.

    from mridiff.inference.superres import SuperResolver
    sr = SuperResolver()                               # bundled x2 model, or SuperResolver("model.safetensors")
    result = sr.superresolve(lr_slices, scale=2)       # lr_slices (S, h, w), real or complex
    result.mean, result.std                            # magnitude (S, 2h, 2w) and per-pixel std over samples

The two low-resolution physics (``lr_model`` ``"kspace"`` for MRI, ``"image"`` for block means) and their grid
conventions are described in :mod:`mridiff.physics.grids`; the output, its affine and every baseline share them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from mridiff.inference.model import LoadedModel, load_model
from mridiff.inference.options import SamplingOptions
from mridiff.inference.pipeline import Batch, Pipeline, SamplingResult
from mridiff.physics.grids import (
    LR_MODELS,
    SR_SCALES,
    check_lr_model,
    check_scale,
    hr_offset,
    simulate_lowres,
    sinc_upsample,
)
from mridiff.physics.operators import AreaDownsample
from mridiff.tasks.sr import sr_problem

__all__ = ["LR_MODELS", "SR_SCALES", "AreaDownsample", "SRResult", "SuperResolver", "bicubic_upsample",
           "check_scale", "hr_affine", "hr_offset", "simulate_lowres", "sinc_upsample"]

SRResult = SamplingResult  # the result type shared by every task (kept under its old name)


def hr_affine(lr_affine: np.ndarray, lr_shape: Sequence[int], axes: Sequence[int], scale: int,
              lr_model: str) -> np.ndarray:
    """Voxel-to-world affine of the HR grid: HR voxel ``s*i + offset`` has LR voxel ``i``'s world coordinate.

    Args:
        lr_affine: float (4, 4) affine of the low-resolution volume.
        lr_shape: shape of the low-resolution volume (3 entries).
        axes: the voxel axes that are upsampled (the in-plane axes).
        scale: upsampling factor.
        lr_model: ``"kspace"`` or ``"image"`` (sets the offset).

    Returns:
        float64 (4, 4): ``lr_affine @ M``, where M maps HR voxel indices to (fractional) LR indices.

    """
    to_lr = np.eye(4)
    for a in axes:
        to_lr[a, a] = 1.0 / scale
        to_lr[a, 3] = -hr_offset(int(lr_shape[a]), scale, lr_model) / scale
    return np.asarray(lr_affine, dtype=np.float64) @ to_lr


def bicubic_upsample(lr: np.ndarray, scale: int, lr_model: str = "kspace") -> np.ndarray:
    """Cubic-spline upsampling of real LR images ``(..., h, w)`` on the grid of ``lr_model``.

    The interpolator is the one ``skimage.transform.resize(order=3)`` uses (scipy.ndimage spline of order 3,
    mirror boundary, output clipped to the input's range); it is sampled at HR voxel ``j`` <- LR coordinate
    ``(j - offset) / s``, so for ``lr_model="image"`` it equals ``resize`` and for ``"kspace"`` it is resize's
    result moved onto the FFT grid without a second interpolation.
    """
    arr = np.asarray(lr, dtype=np.float64)
    h, w = arr.shape[-2:]
    rows = (np.arange(h * scale) - hr_offset(h, scale, lr_model)) / scale
    cols = (np.arange(w * scale) - hr_offset(w, scale, lr_model)) / scale
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"))
    flat = arr.reshape(-1, h, w)
    out = [np.clip(ndimage.map_coordinates(img, grid, order=3, mode="mirror"), img.min(), img.max()) for img in flat]
    return np.stack(out).reshape(*arr.shape[:-2], h * scale, w * scale).astype(np.float32)


class SuperResolver:
    """Conditional-DDPM super-resolution with hard data consistency in every reverse step.

    Args:
        ckpt: exported SR model (``.safetensors`` with its ``.json``); ``None`` for the bundled x2 model.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (auto).
        expect_sha256: refuse weights whose SHA-256 differs.

    """

    def __init__(self, ckpt: str | os.PathLike[str] | None = None, device: str | None = None,
                 expect_sha256: str | None = None) -> None:
        self.model: LoadedModel = load_model(ckpt, "sr", device, expect_sha256)

    @property
    def trained_scales(self) -> list[int]:
        """The scale factors the model was trained on (from its card)."""
        return [int(s) for s in self.model.meta.get("masks", {}).get("sr_scales", [2])]

    def sample(self, lr: torch.Tensor, scale: int, *, lr_model: str = "kspace", options: SamplingOptions | None = None,
               **sampling: Any) -> torch.Tensor:
        """Draw K data-consistent HR images per LR slice, in one batch.

        Args:
            lr: complex64 LR images ``(B, h, w)``.
            scale: 2 or 4.
            lr_model: ``"kspace"`` or ``"image"``.
            options: how to sample (``dc`` is always hard here); or its fields as keywords.
            **sampling: :class:`SamplingOptions` fields, when ``options`` is not given.

        Returns:
            complex64 ``(B, K, s h, s w)`` in the input's units; ``operator(x) == measurement`` for every sample.

        """
        lr = lr.to(torch.complex64)
        pipeline = Pipeline(self.model, options or SamplingOptions(**sampling))
        out, _ = pipeline.draw(range(lr.shape[0]), lambda idx: Batch(sr_problem(lr[list(idx)], scale, lr_model)))
        return out

    def superresolve(self, lr_slices: np.ndarray | torch.Tensor, scale: int, *, lr_model: str = "kspace",
                     options: SamplingOptions | None = None, indices: Sequence[int] | None = None,
                     **sampling: Any) -> SamplingResult:
        """Super-resolve a stack of LR slices; all-zero slices (outside the object) stay zero.

        Args:
            lr_slices: real or complex LR slices ``(S, h, w)`` (one slice ``(h, w)`` is accepted).
            scale: 2 or 4.
            lr_model: ``"kspace"`` (centre of k-space) or ``"image"`` (block means).
            options: how to sample (data consistency is hard: the measurement is kept exactly).
            indices: the slice index of each LR slice in its volume (default ``0..S-1``); the noise of a slice is
                keyed by it, so super-resolving part of a volume gives the same slices as the whole volume.
            **sampling: :class:`SamplingOptions` fields (``steps``, ``sampler``, ``samples``, ``seed``,
                ``batch_size``, ``progress``), when ``options`` is not given.

        Raises:
            ValueError: for an unsupported scale or low-resolution model, or slices that are not ``(S, h, w)``.

        """
        check_scale(scale)
        check_lr_model(lr_model)
        if scale not in self.trained_scales:
            warnings.warn(f"the model was trained for scale(s) {self.trained_scales}, not x{scale}; results are "
                          "out of its domain", stacklevel=2)
        lr = torch.as_tensor(np.asarray(lr_slices)).to(torch.complex64)
        lr = lr.unsqueeze(0) if lr.ndim == 2 else lr
        if lr.ndim != 3:
            raise ValueError(f"expected LR slices (S, h, w), got shape {tuple(lr.shape)}")
        opts = options or SamplingOptions(**sampling)
        keys = list(range(lr.shape[0])) if indices is None else [int(i) for i in indices]
        if len(keys) != lr.shape[0] or len(set(keys)) != len(keys):
            raise ValueError(f"indices must name each of the {lr.shape[0]} slices once")
        position = {key: pos for pos, key in enumerate(keys)}
        live = [i for i in range(lr.shape[0]) if bool(lr[i].abs().max() > 0)]  # an empty slice: nothing to add

        def build(idx: Sequence[int]) -> Batch:
            batch = lr[[position[i] for i in idx]]
            return Batch(sr_problem(batch, scale, lr_model), sinc_upsample(batch, scale, lr_model).abs())

        pipeline = Pipeline(self.model, opts)
        hr_shape = (lr.shape[0], lr.shape[-2] * scale, lr.shape[-1] * scale)
        mean, std, sinc = (np.zeros(hr_shape, np.float32) for _ in range(3))
        seconds = 0.0
        if live:
            part = pipeline.run([keys[i] for i in live], build, desc="superres")
            mean[live], std[live], sinc[live] = part.mean, part.std, part.baseline
            seconds = part.seconds_per_slice * len(live)
        return SamplingResult(mean=mean, std=std, baseline=sinc, nfe=pipeline.nfe,
                              seconds_per_slice=seconds / lr.shape[0])

"""Reconstruction of undersampled k-space with a trained conditional DDPM: the Python API.

from mridiff import Reconstructor
rec = Reconstructor()                       # bundled model; or Reconstructor("model.safetensors")
result = rec.reconstruct(kspace, mask)      # kspace (S, H, W) or (S, C, H, W), complex
result.mean, result.std                     # magnitude (S, H, W) and per-pixel std over samples
rec.reconstruct(kspace, mask, samples=4).interval   # calibrated 90 % interval (see SamplingResult.interval)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mridiff.data.stored_mask import parse_mask
from mridiff.inference.calibration import calibrated_interval
from mridiff.inference.model import LoadedModel, load_model
from mridiff.inference.options import SamplingOptions
from mridiff.inference.pipeline import Batch, Pipeline, SamplingResult
from mridiff.physics.coils import estimate_sens, magnitude_image
from mridiff.physics.consistency import estimate_noise_std
from mridiff.tasks.recon import build_problem

ReconResult = SamplingResult  # the result type shared by every task (kept under its old name)
KspaceSource = Callable[[Sequence[int]], torch.Tensor]


def _tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A tensor of ``x``; a read-only numpy array (h5py, ``np.broadcast_to``) is copied, so torch does not warn."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    arr = np.asarray(x)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def as_volume(kspace: np.ndarray | torch.Tensor, multicoil: bool | None) -> tuple[torch.Tensor, bool]:
    """Complex64 (S, H, W) or (S, C, H, W); a lone slice gains a slice axis. ``multicoil`` resolves 3D input."""
    k = _tensor(kspace)
    if not k.is_complex():
        raise ValueError("k-space must be complex")
    k = k.to(torch.complex64)
    if multicoil is None:
        multicoil = k.ndim == 4
    want = 4 if multicoil else 3
    if k.ndim == want - 1:
        k = k.unsqueeze(0)
    if k.ndim != want:
        raise ValueError(f"expected {'(S, C, H, W)' if multicoil else '(S, H, W)'} k-space, got {tuple(k.shape)}")
    return k, multicoil


def as_masks(mask: np.ndarray | torch.Tensor, num_slices: int, size: tuple[int, int]) -> torch.Tensor:
    """Float32 0/1 masks (S, H, W) from any mask layout fastMRI produces, numpy or torch.

    Accepted: (W,) (``MaskFunc(...)[0].squeeze()``), fastMRI's broadcastable shapes (1, W, 1), (1, 1, W, 1),
    (1, 1, 1, W, 1) (``MaskFunc`` and ``fastmri.data.transforms.apply_mask``), (1, W), (H, W), and per-slice masks
    (S, H, W); boolean or 0/1 values.

    Raises:
        InputError: For a mask that does not fit k-space of size ``size``, non-binary values or an empty mask.

    """
    arr = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if arr.ndim == 3 and arr.shape[1:] == tuple(size) and arr.shape[0] in (1, num_slices):
        per_slice = torch.stack([torch.from_numpy(parse_mask(a, size)) for a in arr])
        return per_slice.expand(num_slices, *size) if arr.shape[0] == 1 else per_slice
    return torch.from_numpy(parse_mask(arr, size)).expand(num_slices, *size)


class Reconstructor:
    """Conditional-DDPM reconstruction with data consistency in every reverse step.

    Args:
        ckpt: exported model (``.safetensors`` with its ``.json``); ``None`` for the bundled model.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (auto).
        expect_sha256: refuse weights whose SHA-256 differs.

    """

    def __init__(self, ckpt: str | os.PathLike[str] | None = None, device: str | None = None,
                 expect_sha256: str | None = None) -> None:
        self.model: LoadedModel = load_model(ckpt, "recon", device, expect_sha256)

    def reconstruct(self, kspace: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor,
                    options: SamplingOptions | None = None, *, multicoil: bool | None = None,
                    sens: np.ndarray | torch.Tensor | None = None, sens_method: str = "espirit",
                    noise_std: float | None = None, coverage: float = 0.9, **sampling: Any) -> SamplingResult:
        """Reconstruct a volume (or one slice) of undersampled k-space.

        Args:
            kspace: complex (S, H, W) single-coil or (S, C, H, W) multi-coil; one slice without S is accepted.
            mask: sampling mask, 1 where measured: (H, W), (S, H, W), or any shape fastMRI's mask functions give,
                e.g. (W,) or (1, 1, W, 1) (see :func:`as_masks`); numpy or torch, bool or 0/1.
            options: how to sample; or give its fields as keywords (``steps=20, dc="soft", samples=4, seed=0,
                batch_size=4, sampler="ddim", progress=True``; see :class:`SamplingOptions`).
            multicoil: resolves 3D input ((C, H, W) slice vs (S, H, W) volume); default: 4D means multi-coil.
            sens: coil maps (S, C, H, W) to use instead of estimating them.
            sens_method: coil-map estimation for multi-coil data, ``"espirit"`` (JSENSE below 12 calibration
                lines), ``"jsense"`` or ``"lowres"``.
            noise_std: k-space noise std for soft consistency, in input units; estimated from the corners if None.
            coverage: nominal coverage of the calibrated interval (K > 1), a level stored in the model's
                calibration table (0.5, 0.6, 0.7, 0.8, 0.9, 0.95 or 0.99 by default).
            **sampling: :class:`SamplingOptions` fields, when ``options`` is not given.

        """
        k, is_multi = as_volume(kspace, multicoil)
        masks = as_masks(mask, k.shape[0], (k.shape[-2], k.shape[-1]))
        return self.reconstruct_slices(lambda idx: k[list(idx)], k.shape[0], masks, options or
                                       SamplingOptions(**sampling), multicoil=is_multi, sens=sens,
                                       sens_method=sens_method, noise_std=noise_std, coverage=coverage)

    def reconstruct_slices(self, read: KspaceSource, num_slices: int, masks: torch.Tensor, opts: SamplingOptions, *,
                           multicoil: bool, sens: np.ndarray | torch.Tensor | None = None,
                           sens_method: str = "espirit", noise_std: float | None = None,
                           coverage: float = 0.9, indices: Sequence[int] | None = None) -> SamplingResult:
        """Reconstruct ``num_slices`` slices read chunk by chunk (a volume is never held whole).

        Args:
            read: slice indices -> complex64 k-space (B, H, W) or (B, C, H, W).
            num_slices: S.
            masks: float32 (S, H, W) masks, indexed by slice index.
            opts: how to sample.
            multicoil: whether ``read`` returns multi-coil k-space.
            sens: coil maps (S, C, H, W), or ``None`` to estimate them with ``sens_method``.
            sens_method: see :meth:`reconstruct`.
            noise_std: see :meth:`reconstruct`.
            coverage: see :meth:`reconstruct`.
            indices: reconstruct only these slices (default all ``num_slices``); the result has one row per index,
                in order. A slice's noise is keyed by its index, so a part of a volume equals those slices of the
                whole (bit-identical on the CPU).

        """
        maps = None if sens is None else _tensor(sens).to(torch.complex64)
        uses_noise = opts.consistency().uses_noise

        def build(idx: Sequence[int]) -> Batch:
            ks, ms = read(idx).to(torch.complex64), masks[list(idx)]
            chunk_maps = None
            if multicoil:
                chunk_maps = maps[list(idx)] if maps is not None else torch.stack(
                    [estimate_sens(ks[i], ms[i], sens_method) for i in range(len(idx))])
            stds = None
            if uses_noise:
                stds = torch.tensor([noise_std if noise_std is not None else estimate_noise_std(ks[i], ms[i])
                                     for i in range(len(idx))])
            zero_filled = magnitude_image(ks * (ms.unsqueeze(1) if multicoil else ms), multicoil)
            return Batch(build_problem(ks, ms, chunk_maps, noise_std=stds), zero_filled)

        picked = range(num_slices) if indices is None else [int(i) for i in indices]
        if any(not 0 <= i < num_slices for i in picked):
            raise ValueError(f"slice indices must lie in 0..{num_slices - 1}")
        result = Pipeline(self.model, opts).run(picked, build, desc="reconstruct")
        if opts.samples > 1:
            acceleration = float(masks[0].numel() / max(float(masks[0].sum()), 1.0))
            result.interval, result.calibration = calibrated_interval(
                self.model.meta, result.mean, result.std, multicoil, acceleration, opts.dc.value, opts.samples,
                coverage, sampling=(opts.sampler.value, opts.make_sampler(self.model.schedule).num_steps))
        return result

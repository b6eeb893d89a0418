"""Reconstruction of undersampled k-space with a trained conditional DDPM: the Python API.

from mridiff import Reconstructor
rec = Reconstructor()                       # bundled model; or Reconstructor("model.safetensors")
result = rec.reconstruct(kspace, mask)      # kspace (S, H, W) or (S, C, H, W), complex
result.mean, result.std                     # magnitude (S, H, W) and per-pixel std over samples
rec.reconstruct(kspace, mask, samples=4).interval   # calibrated 90 % interval (see ReconResult.interval)
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mridiff.diffusion.loop import ConsistencySettings, reverse_diffusion
from mridiff.diffusion.samplers import make_sampler
from mridiff.inference.batching import run_chunked
from mridiff.inference.calibration import Interval, interval, lookup, mode_key
from mridiff.inference.model import LoadedModel, load_model
from mridiff.physics.coils import estimate_sens, rss
from mridiff.physics.consistency import estimate_noise_std
from mridiff.physics.fft import ifft2c
from mridiff.physics.masks import mask_from_array
from mridiff.physics.operators import MultiCoil, Operator, SingleCoil
from mridiff.tasks.recon import ReconProblem, build_problem


@dataclass
class ReconResult:
    """Reconstruction of a volume, magnitudes on the full acquired grid (crop for display and metrics).

    Attributes:
        mean: mean magnitude over samples, float32 (S, H, W), in the input's k-space units.
        std: per-pixel std of the magnitude over samples (zeros when one sample), float32 (S, H, W).
        zero_filled: zero-filled magnitude (RSS over coils for multi-coil), float32 (S, H, W).
        nfe: network evaluations per sample.
        seconds_per_slice: wall-clock seconds per slice, all samples included.
        interval: the calibrated interval (K > 1 and a calibration entry for this mode in the model), else
            ``None``: ``std_calibrated`` (half-width), ``lower``, ``upper`` at ``level``. It covers the truth for at
            least that fraction of object pixels, marginally over scans exchangeable with the calibration scans
            (same kind of anatomy, contrast, noise, acceleration and mask). It does not hold for a single pixel or
            for scans unlike the calibration data.
        calibration: how the interval was made (mode key, level, quantile, calibration slices), or why there is
            none (``{"status": "uncalibrated", ...}``); ``None`` for K = 1.

    """

    mean: np.ndarray
    std: np.ndarray
    zero_filled: np.ndarray
    nfe: int
    seconds_per_slice: float
    interval: Interval | None = None
    calibration: dict[str, Any] | None = None


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
    t = mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask
    arr = np.asarray(t)
    if arr.ndim == 3 and arr.shape[1:] == tuple(size) and arr.shape[0] in (1, num_slices):
        per_slice = torch.stack([mask_from_array(a, size) for a in arr])
        return per_slice.expand(num_slices, *size) if arr.shape[0] == 1 else per_slice
    return mask_from_array(arr, size).expand(num_slices, *size)


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

    def reconstruct(
        self,
        kspace: np.ndarray | torch.Tensor,
        mask: np.ndarray | torch.Tensor,
        *,
        multicoil: bool | None = None,
        steps: int = 50,
        sampler: str = "ddim",
        dc: str = "hard",
        samples: int = 1,
        seed: int = 0,
        batch_size: int = 4,
        noise_std: float | None = None,
        sens_method: str = "espirit",
        sens: np.ndarray | torch.Tensor | None = None,
        progress: bool = False,
        coverage: float = 0.9,
    ) -> ReconResult:
        """Reconstruct a volume (or one slice) of undersampled k-space.

        Args:
            kspace: complex (S, H, W) single-coil or (S, C, H, W) multi-coil; one slice without S is accepted.
            mask: sampling mask, 1 where measured: (H, W), (S, H, W), or any shape fastMRI's mask functions give,
                e.g. (W,) or (1, 1, W, 1) (see :func:`as_masks`); numpy or torch, bool or 0/1.
            multicoil: resolves 3D input ((C, H, W) slice vs (S, H, W) volume); default: 4D means multi-coil.
            steps: DDIM steps (DDPM always takes the schedule's T).
            sampler: ``"ddim"`` or ``"ddpm"``.
            dc: data consistency, ``"hard"``, ``"cg"``, ``"soft"`` or ``"none"``.
            samples: K samples per slice; K > 1 gives a std map.
            seed: random seed; the same seed gives the same result on the same machine.
            batch_size: slices per batch (each with K samples); halves on GPU out-of-memory.
            noise_std: k-space noise std for soft consistency, in input units; estimated from the corners if None.
            sens_method: coil-map estimation for multi-coil data, ``"espirit"`` (JSENSE below 12 calibration
                lines), ``"jsense"`` or ``"lowres"``.
            sens: coil maps (S, C, H, W) to use instead of estimating them.
            progress: show progress bars.
            coverage: nominal coverage of the calibrated interval (K > 1), a level stored in the model's
                calibration table (0.5, 0.6, 0.7, 0.8, 0.9, 0.95 or 0.99 by default).

        """
        k, is_multi = as_volume(kspace, multicoil)
        masks = as_masks(mask, k.shape[0], (k.shape[-2], k.shape[-1]))
        sens_all = None if sens is None else _tensor(sens).to(torch.complex64)
        net, schedule, device = self.model.net, self.model.schedule, self.model.device
        samp = make_sampler(sampler, schedule, steps)
        start = time.perf_counter()
        bar = tqdm(total=k.shape[0], desc="slices", unit="slice", disable=not progress)

        def run(idx: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            ks, ms = k[list(idx)], masks[list(idx)]
            maps = None
            if is_multi:
                maps = sens_all[list(idx)] if sens_all is not None else torch.stack(
                    [estimate_sens(ks[i], ms[i], sens_method) for i in range(len(idx))])
            problem = build_problem(ks, ms, maps)
            noise_var = 0.0
            if dc == "soft":
                stds = [noise_std if noise_std is not None else estimate_noise_std(ks[i], ms[i])
                        for i in range(len(idx))]
                noise_var = float(np.mean([(s / float(problem.scale[i])) ** 2 for i, s in enumerate(stds)]))
            rep = samples
            op = _repeat_operator(problem, rep, is_multi, device)
            y = problem.y.repeat_interleave(rep, 0).to(device)
            cond = problem.cond.repeat_interleave(rep, 0).to(device)
            gen = torch.Generator().manual_seed(seed + int(idx[0]))
            out = reverse_diffusion(net, schedule, samp, cond, cond, op, y, ConsistencySettings(dc, noise_var),
                                    generator=gen, progress=progress, desc="steps")
            mags = (out.abs().float().cpu() * problem.scale.repeat_interleave(rep, 0).reshape(-1, 1, 1))
            mags = mags.reshape(len(idx), rep, *mags.shape[-2:])
            zf = rss(ifft2c(ks * (ms.unsqueeze(1) if is_multi else ms)), dim=1) if is_multi else ifft2c(ks * ms).abs()
            bar.update(len(idx))
            std = mags.std(dim=1, unbiased=False) if rep > 1 else torch.zeros_like(mags[:, 0])
            return [(mags[i].mean(0).numpy(), std[i].numpy(), zf[i].float().numpy()) for i in range(len(idx))]

        results = run_chunked(list(range(k.shape[0])), run, batch_size)
        bar.close()
        elapsed = time.perf_counter() - start
        mean = np.stack([r[0] for r in results]).astype(np.float32)
        std = np.stack([r[1] for r in results]).astype(np.float32)
        iv, info = None, None
        if samples > 1:
            acceleration = float(masks[0].numel() / max(float(masks[0].sum()), 1.0))
            iv, info = self.calibrated_interval(mean, std, is_multi, acceleration, dc, samples, coverage)
        return ReconResult(mean=mean, std=std, zero_filled=np.stack([r[2] for r in results]).astype(np.float32),
                           nfe=samp.num_steps, seconds_per_slice=elapsed / k.shape[0], interval=iv, calibration=info)

    def calibrated_interval(self, mean: np.ndarray, std: np.ndarray, multicoil: bool, acceleration: float, dc: str,
                            samples: int, level: float) -> tuple[Interval | None, dict[str, Any]]:
        """The calibrated interval from the model's calibration table, or ``None`` and why (with a warning).

        The table entry is the one for this coil setting, DC kind and K whose acceleration is nearest to the mask's
        measured acceleration, within a factor of sqrt(2) (half-way, geometrically, between 4x and 8x): a random
        mask's acceleration is only close to its nominal value, more so on small grids.
        """
        table = (self.model.meta.get("calibration") or {}).get("table") or {}
        coil = "multicoil" if multicoil else "singlecoil"
        best: tuple[float, str] | None = None
        for key in table:
            parts = key.split(":")
            if len(parts) != 4 or parts[0] != coil or parts[2] != dc or parts[3] != f"K{samples}":
                continue
            try:
                nominal = float(parts[1].rstrip("x"))
            except ValueError:
                continue
            gap = abs(math.log(acceleration / nominal))
            if gap <= math.log(math.sqrt(2.0)) and (best is None or gap < best[0]):
                best = (gap, key)
        wanted = mode_key(multicoil, round(acceleration, 1), dc, samples)
        if best is None:
            warnings.warn(f"no calibration entry for {wanted} in this model; the std map is not calibrated "
                          "(run `mridiff calibrate` on validation scans)", stacklevel=3)
            return None, {"status": "uncalibrated", "mode": wanted, "level": level}
        quantile = lookup(table, best[1], level)
        if quantile is None:
            warnings.warn(f"the calibration of {best[1]} has no {level:g} level; the std map is not calibrated",
                          stacklevel=3)
            return None, {"status": "uncalibrated", "mode": best[1], "level": level}
        entry = table[best[1]]
        info = {"status": "calibrated", "mode": best[1], "level": level, "quantile": quantile,
                "calibration_slices": entry.get("slices"), "measured_acceleration": round(acceleration, 2)}
        return interval(mean, std, quantile, level), info


def _repeat_operator(problem: ReconProblem, rep: int, multicoil: bool, device: torch.device) -> Operator:
    """The batch's operator with each slice repeated ``rep`` times (K samples share one measurement)."""
    op = problem.operator
    if multicoil:
        assert isinstance(op, MultiCoil)
        return MultiCoil(op.mask.repeat_interleave(rep, 0).to(device), op.sens.repeat_interleave(rep, 0).to(device))
    assert isinstance(op, SingleCoil)
    mask = op.mask if op.mask.ndim == 2 else op.mask.repeat_interleave(rep, 0)
    return SingleCoil(mask.to(device))

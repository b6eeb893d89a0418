"""Super-resolution of low-resolution MRI slices with a conditional DDPM: grid convention, baselines and the API.

    from mridiff.inference.superres import SuperResolver
    sr = SuperResolver()                               # bundled x2 model, or SuperResolver("model.safetensors")
    result = sr.superresolve(lr_slices, scale=2)       # lr_slices (S, h, w), real or complex
    result.mean, result.std                            # magnitude (S, 2h, 2w) and per-pixel std over samples

Two low-resolution physics (``lr_model``):

* ``"kspace"`` (MRI): the low-resolution image is the centre of k-space, ``A = P F`` (:class:`KspaceCrop`).
* ``"image"`` (non-MRI data): the low-resolution image is the mean of each ``s x s`` block, ``A = D``
  (:class:`AreaDownsample`).

Grid convention (one per physics, shared by the output, its affine and every baseline). LR voxel ``i`` sits at
HR index ``s * i + offset``:

* ``kspace``: the centred FFT puts the spatial origin at index ``n // 2`` (``ifftshift`` moves it to 0), and
  zero-padding k-space with DC kept at DC (index ``n // 2 -> N // 2``) keeps that origin. So
  ``j - N // 2 = s * (i - n // 2)``, i.e. ``offset = N // 2 - s * (n // 2)`` with ``N = s * n``: 0 for even ``n``,
  ``s / 2`` for odd ``n``. There the sinc-interpolated image reproduces the LR samples exactly.
* ``image``: block ``i`` covers HR voxels ``s*i .. s*i + s - 1``, so its centre is at ``offset = (s - 1) / 2``
  (the convention of ``skimage.transform.resize``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from mridiff.diffusion.loop import ConsistencySettings, reverse_diffusion
from mridiff.diffusion.samplers import make_sampler
from mridiff.errors import InputError
from mridiff.inference.batching import run_chunked
from mridiff.inference.model import LoadedModel, load_model
from mridiff.physics.fft import fft2c, ifft2c
from mridiff.physics.operators import KspaceCrop, Operator
from mridiff.tasks.recon import percentile_scale

SR_SCALES: tuple[int, ...] = (2, 4)
LR_MODELS: tuple[str, ...] = ("kspace", "image")


def check_scale(scale: int) -> int:
    """Return ``scale`` if it is a supported factor (2 or 4), else raise :class:`InputError`."""
    if scale not in SR_SCALES:
        raise InputError(None, f"scale {scale} is not supported", f"choose one of {', '.join(map(str, SR_SCALES))}")
    return int(scale)


def hr_offset(n_lr: int, scale: int, lr_model: str) -> float:
    """HR index of the centre of LR voxel 0 (LR voxel ``i`` sits at ``scale * i + offset``; see module doc)."""
    if lr_model == "kspace":
        return float((scale * n_lr) // 2 - scale * (n_lr // 2))
    if lr_model == "image":
        return (scale - 1) / 2.0
    raise ValueError(f"unknown lr_model {lr_model!r}; choose one of {LR_MODELS}")


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


class AreaDownsample(Operator):
    """Image-domain downsampling: the mean of each ``f x f`` block, ``A = D`` (rows orthogonal, norm 1/f).

    Args:
        factor: block size per axis.
        hr_shape: high-resolution size ``(H, W)``, multiples of ``factor``.

    Shapes: x ``(B, H, W)`` complex64 -> y ``(B, H//f, W//f)`` complex64.

    """

    has_exact_projection = True

    def __init__(self, factor: int, hr_shape: tuple[int, int]) -> None:
        if factor < 1 or hr_shape[0] % factor or hr_shape[1] % factor:
            raise ValueError(f"factor {factor} does not divide image shape {hr_shape}")
        self.factor = int(factor)
        self.hr_shape = (int(hr_shape[0]), int(hr_shape[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Block means; x ``(B, H, W)`` -> y ``(B, H/f, W/f)``."""
        f = self.factor
        return x.reshape(*x.shape[:-2], x.shape[-2] // f, f, x.shape[-1] // f, f).mean(dim=(-3, -1))

    def _repeat(self, y: torch.Tensor) -> torch.Tensor:
        return y.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``D^H y``: every HR voxel of a block gets ``y / f^2``; y ``(B, h, w)`` -> x ``(B, H, W)``."""
        return self._repeat(y) / self.factor**2

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + D^H (D D^H)^-1 (y - D x)``: add each block's residual to all its voxels, so block means equal y."""
        return x + self._repeat(y - self.forward(x))


def fourier_shift(x: torch.Tensor, shift: tuple[float, float]) -> torch.Tensor:
    """Shift complex images ``(B, H, W)`` by ``shift`` (rows, cols) voxels, band-limited (periodic) interpolation."""
    out = fft2c(x)
    for axis, d in zip((-2, -1), shift, strict=True):
        if d == 0:
            continue
        n = x.shape[axis]
        k = torch.arange(n, dtype=torch.float64) - n // 2
        ramp = torch.exp(-2j * torch.pi * k * d / n).to(torch.complex64).to(x.device)
        out = out * (ramp.reshape(-1, 1) if axis == -2 else ramp)
    return ifft2c(out)


def sinc_upsample(lr: torch.Tensor, scale: int, lr_model: str = "kspace") -> torch.Tensor:
    """Zero-padded k-space (sinc) interpolation of complex LR images ``(B, h, w)`` to ``(B, s h, s w)``.

    The result lies on the grid of ``lr_model``: for ``image`` the k-space result is shifted by a fraction of a
    voxel onto the block grid.

    """
    h, w = lr.shape[-2:]
    op = KspaceCrop(scale, (h * scale, w * scale))
    hr = op.adjoint(scale * fft2c(lr))  # orthonormal FFTs: the factor s keeps intensities
    if lr_model == "kspace":
        return hr
    shift = (hr_offset(h, scale, "image") - hr_offset(h, scale, "kspace"),
             hr_offset(w, scale, "image") - hr_offset(w, scale, "kspace"))
    return fourier_shift(hr, shift)


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


def simulate_lowres(hr: torch.Tensor, scale: int, lr_model: str = "kspace") -> torch.Tensor:
    """Low-resolution images ``(B, H/s, W/s)`` of complex HR images ``(B, H, W)`` (same intensity scale).

    Raises:
        InputError: when ``scale`` is not 2 or 4 or does not divide H and W.

    """
    check_scale(scale)
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise InputError(None, f"scale {scale} does not divide the image size ({height}, {width})",
                         "crop or pad the high-resolution image to a multiple of the scale")
    if lr_model == "kspace":
        op = KspaceCrop(scale, (height, width))
        return op.lowres_image(op.forward(hr))
    return AreaDownsample(scale, (height, width)).forward(hr)


@dataclass
class SRProblem:
    """A batch of normalised SR problems (each slice divided by its condition's 99th magnitude percentile).

    Attributes:
        operator: the LR forward operator on the HR grid.
        y: LR measurements / scale: k-space block ``(B, h, w)`` (``kspace``) or LR image ``(B, h, w)`` (``image``).
        cond: the LR image sinc-interpolated to the HR grid / scale, complex64 ``(B, H, W)``.
        scale: per-slice normalisation factors ``(B,)``.

    """

    operator: Operator
    y: torch.Tensor
    cond: torch.Tensor
    scale: torch.Tensor


def build_sr_problem(lr: torch.Tensor, scale: int, lr_model: str) -> SRProblem:
    """Normalised SR problems for complex LR images ``(B, h, w)``."""
    h, w = lr.shape[-2:]
    hr_shape = (h * scale, w * scale)
    operator: Operator
    if lr_model == "kspace":
        # y = s F lr is the measured k-space block in HR units (KspaceCrop.lowres_image divides by s again).
        operator, y = KspaceCrop(scale, hr_shape), scale * fft2c(lr)
    else:
        operator, y = AreaDownsample(scale, hr_shape), lr
    cond = sinc_upsample(lr, scale, lr_model)
    norm = torch.tensor([percentile_scale(c) for c in cond], dtype=torch.float32)
    s = norm.reshape(-1, 1, 1)
    return SRProblem(operator=operator, y=y / s, cond=cond / s, scale=norm)


@dataclass
class SRResult:
    """Super-resolved slices, magnitudes in the input's units on the HR grid.

    Attributes:
        mean: mean magnitude over samples, float32 ``(S, s h, s w)``.
        std: per-pixel std of the magnitude over samples (zeros for one sample), float32 ``(S, s h, s w)``.
        sinc: zero-padded k-space baseline (the network's condition), float32 ``(S, s h, s w)``.
        nfe: network evaluations per sample.
        seconds_per_slice: wall-clock seconds per slice, all samples included.

    """

    mean: np.ndarray
    std: np.ndarray
    sinc: np.ndarray
    nfe: int
    seconds_per_slice: float


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

    def sample(self, lr: torch.Tensor, scale: int, *, lr_model: str = "kspace", steps: int = 50,
               sampler: str = "ddim", samples: int = 1, generator: torch.Generator | None = None,
               progress: bool = False) -> torch.Tensor:
        """Draw ``samples`` data-consistent HR images per LR slice.

        Args:
            lr: complex64 LR images ``(B, h, w)``.
            scale: 2 or 4.
            lr_model: ``"kspace"`` or ``"image"``.
            steps: DDIM steps (DDPM always takes the schedule's T).
            sampler: ``"ddim"`` or ``"ddpm"``.
            samples: K samples per slice.
            generator: CPU random generator.
            progress: show a progress bar over steps.

        Returns:
            complex64 ``(B, K, s h, s w)`` in the input's units; ``operator(x) == measurement`` for every sample.

        """
        problem = build_sr_problem(lr.to(torch.complex64), check_scale(scale), lr_model)
        net, schedule, device = self.model.net, self.model.schedule, self.model.device
        rep = samples
        cond = problem.cond.repeat_interleave(rep, 0).to(device)
        y = problem.y.repeat_interleave(rep, 0).to(device)
        out = reverse_diffusion(net, schedule, make_sampler(sampler, schedule, steps), cond, cond,
                                problem.operator, y, ConsistencySettings("hard"), generator=generator,
                                progress=progress, desc="steps")
        out = out.cpu() * problem.scale.repeat_interleave(rep, 0).reshape(-1, 1, 1)
        return out.reshape(lr.shape[0], rep, *out.shape[-2:])

    def superresolve(self, lr_slices: np.ndarray | torch.Tensor, scale: int, *, lr_model: str = "kspace",
                     steps: int = 50, sampler: str = "ddim", samples: int = 1, seed: int = 0, batch_size: int = 4,
                     progress: bool = False) -> SRResult:
        """Super-resolve a stack of LR slices; all-zero slices (outside the object) stay zero.

        Args:
            lr_slices: real or complex LR slices ``(S, h, w)`` (one slice ``(h, w)`` is accepted).
            scale: 2 or 4.
            lr_model: ``"kspace"`` (centre of k-space) or ``"image"`` (block means).
            steps: DDIM steps.
            sampler: ``"ddim"`` or ``"ddpm"``.
            samples: K samples per slice; K > 1 gives a std map.
            seed: random seed; the same seed gives the same result on the same machine.
            batch_size: slices per batch (each with K samples); halves on GPU out-of-memory.
            progress: show a progress bar over slices.

        """
        check_scale(scale)
        if lr_model not in LR_MODELS:
            raise InputError(None, f"unknown low-resolution model {lr_model!r}", f"choose one of {LR_MODELS}")
        if scale not in self.trained_scales:
            warnings.warn(f"the model was trained for scale(s) {self.trained_scales}, not x{scale}; results are "
                          "out of its domain", stacklevel=2)
        lr = torch.as_tensor(np.asarray(lr_slices)).to(torch.complex64)
        lr = lr.unsqueeze(0) if lr.ndim == 2 else lr
        if lr.ndim != 3:
            raise InputError(None, f"expected LR slices (S, h, w), got shape {tuple(lr.shape)}")
        samp = make_sampler(sampler, self.model.schedule, steps)
        hr_shape = (lr.shape[-2] * scale, lr.shape[-1] * scale)
        start = time.perf_counter()
        bar = tqdm(total=lr.shape[0], desc="slices", unit="slice", disable=not progress)

        def run(idx: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            batch = lr[list(idx)]
            sinc = sinc_upsample(batch, scale, lr_model).abs()
            mags = torch.zeros(len(idx), samples, *hr_shape)
            live = [i for i in range(len(idx)) if bool(batch[i].abs().max() > 0)]
            if live:  # an empty slice has no normalisation and nothing to add
                gen = torch.Generator().manual_seed(seed + int(idx[0]))
                mags[live] = self.sample(batch[live], scale, lr_model=lr_model, steps=steps, sampler=sampler,
                                         samples=samples, generator=gen).abs().float()
            bar.update(len(idx))
            std = mags.std(dim=1, unbiased=False) if samples > 1 else torch.zeros_like(mags[:, 0])
            return [(mags[i].mean(0).numpy(), std[i].numpy(), sinc[i].numpy()) for i in range(len(idx))]

        results = run_chunked(list(range(lr.shape[0])), run, batch_size)
        bar.close()
        return SRResult(mean=np.stack([r[0] for r in results]).astype(np.float32),
                        std=np.stack([r[1] for r in results]).astype(np.float32),
                        sinc=np.stack([r[2] for r in results]).astype(np.float32),
                        nfe=samp.num_steps, seconds_per_slice=(time.perf_counter() - start) / lr.shape[0])

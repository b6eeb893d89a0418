"""Forward operators A for MRI: undersampled single-coil and SENSE Fourier sampling, and the two SR operators.

Every operator is complex, batched over the first axis and free of side effects: it never modifies its inputs,
and its results depend on its arguments only (``MultiCoil`` remembers its last ``A^H y``, which the loop asks for
at every step), so one operator can be shared by the whole reverse-diffusion loop. An optional ``scale``
(a float, or a ``(B,)`` tensor for per-sample normalisation) maps the normalised diffusion image to measured
units, ``A = scale * M F (S)``, so that ``A^H A`` and the projections use the data as measured.

``repeat_interleave(k)`` gives the operator of a batch whose samples are each repeated ``k`` times (K posterior
samples share one measurement) and ``to(device)`` moves it; both return a new operator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from mridiff.physics.fft import fft2c, ifft2c
from mridiff.physics.sense import fold_shifts, sense_normal
from mridiff.utils import per_sample

Scale = float | torch.Tensor


def _check_scale(scale: Scale) -> Scale:
    if isinstance(scale, torch.Tensor):
        if scale.ndim > 1 or bool((scale <= 0).any()):
            raise ValueError("scale must be a positive float or a positive (B,) tensor")
        return scale.detach()
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return float(scale)


def expand_scale(scale: Scale, like: torch.Tensor) -> Scale:
    """Broadcast a per-sample ``(B,)`` scale against a batched tensor ``(B, ...)``; floats pass through.

    Args:
        scale: Float or ``(B,)`` real tensor.
        like: Tensor whose first axis is the batch.

    Returns:
        The float, or the tensor reshaped to ``(B, 1, ..., 1)`` on ``like``'s device.

    """
    return per_sample(scale, like) if isinstance(scale, torch.Tensor) else scale


def _repeat_batch(value: torch.Tensor, k: int, batched: bool) -> torch.Tensor:
    """Repeat each batch element of ``value`` ``k`` times when it has a batch axis; a shared value stays as it is."""
    return value.repeat_interleave(k, 0) if batched else value


def _repeat_scale(scale: Scale, k: int) -> Scale:
    return scale.repeat_interleave(k, 0) if isinstance(scale, torch.Tensor) else scale


def _scale_to(scale: Scale, device: torch.device | str) -> Scale:
    return scale.to(device) if isinstance(scale, torch.Tensor) else scale


class Operator(ABC):
    """A linear measurement operator ``A`` with its adjoint.

    Attributes:
        has_exact_projection: Whether :meth:`project` is available (A's rows are scaled orthonormal selections).
        scale: Measurement scale (float or ``(B,)`` tensor).

    """

    has_exact_projection: bool = False
    scale: Scale = 1.0

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A`` to a complex image batch."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply ``A^H`` to a complex measurement batch."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A^H A``; same shape and dtype as ``x``."""
        return self.adjoint(self.forward(x))

    def restrict(self, x: torch.Tensor) -> torch.Tensor:
        """Zero ``x`` where the operator cannot see it at all and the image is known to be zero (default: nowhere)."""
        return x

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact data-consistency projection of ``x`` onto ``{x : A x = y}``.

        Raises:
            TypeError: For operators without an exact projection (see :attr:`has_exact_projection`).

        """
        raise TypeError(f"{type(self).__name__} has no exact data-consistency projection; use CG consistency")

    @abstractmethod
    def repeat_interleave(self, k: int) -> Operator:
        """The operator for a batch in which every element is repeated ``k`` times (``Tensor.repeat_interleave``)."""

    @abstractmethod
    def to(self, device: torch.device | str) -> Operator:
        """The same operator with its tensors on ``device``."""


def _mask_like(mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Move a ``(H, W)`` or ``(B, H, W)`` mask to ``k``'s device, adding a coil axis when ``k`` is ``(B, C, H, W)``."""
    mask = mask.to(k.device)
    if mask.ndim == 3 and k.ndim == 4:
        mask = mask.unsqueeze(1)
    return mask


def _check_mask(mask: torch.Tensor) -> torch.Tensor:
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
    return mask.detach().to(torch.float32)


class SingleCoil(Operator):
    """Undersampled single-coil Fourier sampling, ``A = scale * M F``.

    Args:
        mask: Binary mask, float ``(H, W)`` or ``(B, H, W)``.
        scale: Positive float or ``(B,)`` tensor.

    Shapes: x ``(B, H, W)`` complex64 -> y ``(B, H, W)`` complex64 (zeros where not measured).

    """

    has_exact_projection = True

    def __init__(self, mask: torch.Tensor, scale: Scale = 1.0) -> None:
        self.mask = _check_mask(mask)
        self.scale = _check_scale(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = scale * M F x``; x ``(B, H, W)`` complex -> y ``(B, H, W)`` complex."""
        k = fft2c(x)
        return expand_scale(self.scale, k) * _mask_like(self.mask, k) * k

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = scale * F^H M y``; y ``(B, H, W)`` complex -> x ``(B, H, W)`` complex."""
        return expand_scale(self.scale, y) * ifft2c(_mask_like(self.mask, y) * y)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Replace the measured k-space samples of ``x`` by ``y / scale``; x, y ``(B, H, W)`` complex."""
        k = fft2c(x)
        measured = _mask_like(self.mask, k) > 0
        return ifft2c(torch.where(measured, y / expand_scale(self.scale, y), k))

    def repeat_interleave(self, k: int) -> SingleCoil:
        """Repeat per-sample masks and scales ``k`` times; a shared ``(H, W)`` mask stays shared."""
        return SingleCoil(_repeat_batch(self.mask, k, self.mask.ndim == 3), _repeat_scale(self.scale, k))

    def to(self, device: torch.device | str) -> SingleCoil:
        """Move the mask (and a tensor scale) to ``device``."""
        return SingleCoil(self.mask.to(device), _scale_to(self.scale, device))


class MultiCoil(Operator):
    """Undersampled SENSE operator, ``A = scale * M F S`` (no exact projection: SENSE is not orthogonal).

    Args:
        mask: Binary mask, float ``(H, W)`` or ``(B, H, W)``.
        sens: Coil sensitivities, complex ``(B, C, H, W)`` (or ``(C, H, W)`` shared by the batch).
        scale: Positive float or ``(B,)`` tensor.

    Shapes: x ``(B, H, W)`` complex64 -> y ``(B, C, H, W)`` complex64.

    """

    def __init__(self, mask: torch.Tensor, sens: torch.Tensor, scale: Scale = 1.0) -> None:
        if sens.ndim not in (3, 4) or not sens.is_complex():
            raise ValueError(f"sens must be complex (B, C, H, W) or (C, H, W), got {tuple(sens.shape)} {sens.dtype}")
        self.mask = _check_mask(mask)
        self.sens = sens.detach()
        self.scale = _check_scale(scale)
        self._support = (self.sens.abs().sum(dim=-3) > 0).to(self.sens.dtype)
        self._normal_sens, self._normal_mask, self._normal_dims = fold_shifts(self.mask, self.sens)
        self._normal_sens_conj = self._normal_sens.conj().resolve_conj()  # a lazy conj multiplies ~2x slower
        self._adjoint_memo: tuple[torch.Tensor, int, torch.Tensor, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = scale * M F S x``; x ``(B, H, W)`` complex -> y ``(B, C, H, W)`` complex."""
        k = fft2c(self.sens.to(x.device) * x.unsqueeze(-3))
        return expand_scale(self.scale, k) * _mask_like(self.mask, k) * k

    def restrict(self, x: torch.Tensor) -> torch.Tensor:
        """Zero ``x`` outside the coil support (pixels where every map is zero, e.g. ESPIRiT's crop).

        No coil receives signal there, so the data say nothing about those pixels and the physics says they hold
        no signal; without this the prior alone fills the background, with texture that costs PSNR.
        """
        return x * self._support.to(x.device)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = scale * S^H F^H M y``; y ``(B, C, H, W)`` complex -> x ``(B, H, W)`` complex.

        The reverse loop asks for ``A^H y`` of the same measurements at every step (CG's right-hand side), so the
        last result is kept and returned again while neither ``y`` nor the result has been changed in place.
        """
        memo = self._adjoint_memo
        if memo is not None and memo[0] is y and memo[1] == y._version and memo[3] == memo[2]._version:
            return memo[2]
        coil_images = ifft2c(_mask_like(self.mask, y) * y)
        x = (self.sens.to(y.device).conj() * coil_images).sum(dim=-3)
        x = expand_scale(self.scale, x) * x
        self._adjoint_memo = (y, y._version, x, x._version)
        return x

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x = scale^2 S^H F^H M^2 F S x`` in one pass; same value as ``adjoint(forward(x))``.

        CG spends nearly all its time here. The centring shifts are folded into the cached maps and mask, so the
        per-coil work is one plain FFT pair; for a mask that only selects columns (fastMRI's 1D masks) the FFT
        along the rows cancels and only 1D FFTs along the columns remain (about 4x faster than the composition at
        256², 8 coils).
        """
        image = sense_normal(x, self._normal_sens, self._normal_sens_conj, self._normal_mask, self._normal_dims)
        scale = expand_scale(self.scale, image)
        return image if isinstance(scale, float) and scale == 1.0 else scale * scale * image

    def repeat_interleave(self, k: int) -> MultiCoil:
        """Repeat per-sample masks, coil maps and scales ``k`` times; shared ones stay shared."""
        return MultiCoil(_repeat_batch(self.mask, k, self.mask.ndim == 3),
                         _repeat_batch(self.sens, k, self.sens.ndim == 4), _repeat_scale(self.scale, k))

    def to(self, device: torch.device | str) -> MultiCoil:
        """Move the mask, coil maps (and a tensor scale) to ``device``."""
        return MultiCoil(self.mask.to(device), self.sens.to(device), _scale_to(self.scale, device))


class KspaceCrop(Operator):
    """Super-resolution operator: keep the central ``(H//f, W//f)`` block of k-space, ``A = scale * P F``.

    The block is placed so that DC stays at DC (rows ``H//2 - h//2 ...``), so the low-resolution image is not
    shifted.

    Args:
        factor: Integer downsampling factor per axis (>= 1).
        hr_shape: High-resolution image size ``(H, W)``.
        scale: Positive float or ``(B,)`` tensor.

    Shapes: x ``(B, H, W)`` complex64 -> y ``(B, H//f, W//f)`` complex64.

    """

    has_exact_projection = True

    def __init__(self, factor: int, hr_shape: tuple[int, int], scale: Scale = 1.0) -> None:
        height, width = hr_shape
        if factor < 1 or height // factor < 1 or width // factor < 1:
            raise ValueError(f"factor {factor} does not fit image shape {hr_shape}")
        self.factor = int(factor)
        self.hr_shape = (int(height), int(width))
        self.lr_shape = (height // factor, width // factor)
        self.scale = _check_scale(scale)
        r0 = height // 2 - self.lr_shape[0] // 2
        c0 = width // 2 - self.lr_shape[1] // 2
        self._block = (slice(r0, r0 + self.lr_shape[0]), slice(c0, c0 + self.lr_shape[1]))

    def _check_hr(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != self.hr_shape:
            raise ValueError(f"expected images of size {self.hr_shape}, got {tuple(x.shape[-2:])}")

    def _pad(self, y: torch.Tensor) -> torch.Tensor:
        k = y.new_zeros((*y.shape[:-2], *self.hr_shape))
        k[(..., *self._block)] = y
        return k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = scale * P F x``; x ``(B, H, W)`` complex -> y ``(B, H//f, W//f)`` complex."""
        self._check_hr(x)
        block = fft2c(x)[(..., *self._block)]
        return expand_scale(self.scale, block) * block

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = scale * F^H P^T y`` (zero-padding); y ``(B, h, w)`` complex -> x ``(B, H, W)`` complex."""
        return expand_scale(self.scale, y) * ifft2c(self._pad(y))

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Replace the central k-space block of ``x`` by ``y / scale``; x ``(B, H, W)``, y ``(B, h, w)``."""
        self._check_hr(x)
        k = fft2c(x)  # a fresh tensor, so writing into it leaves x untouched
        k[(..., *self._block)] = y / expand_scale(self.scale, y)
        return ifft2c(k)

    def lowres_image(self, y: torch.Tensor) -> torch.Tensor:
        """Low-resolution image with the intensity of the high-resolution one, ``ifft2c(y) / (factor * scale)``.

        With orthonormal FFTs, cropping k-space by ``f`` per axis multiplies intensities by ``f``; dividing by
        ``factor`` undoes it, and by ``scale`` returns to the normalised units of x.

        Args:
            y: ``(B, h, w)`` complex measurements.

        Returns:
            ``(B, h, w)`` complex image.

        """
        return ifft2c(y) / (self.factor * expand_scale(self.scale, y))

    def upsample(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-padded (sinc-interpolated) high-resolution image, ``ifft2c(zero-pad(y)) / scale``.

        Equals ``A^H y`` when ``scale == 1``; in general ``A^H y / scale**2``, i.e. it stays in x's units.

        Args:
            y: ``(B, h, w)`` complex measurements.

        Returns:
            ``(B, H, W)`` complex image.

        """
        return ifft2c(self._pad(y)) / expand_scale(self.scale, y)

    def repeat_interleave(self, k: int) -> KspaceCrop:
        """Repeat a per-sample scale ``k`` times (the crop itself is shared)."""
        return KspaceCrop(self.factor, self.hr_shape, _repeat_scale(self.scale, k))

    def to(self, device: torch.device | str) -> KspaceCrop:
        """Move a tensor scale to ``device``."""
        return KspaceCrop(self.factor, self.hr_shape, _scale_to(self.scale, device))


class AreaDownsample(Operator):
    """Image-domain downsampling for non-MRI images: the mean of each ``f x f`` block, ``A = D``.

    The rows of ``D`` are orthogonal with norm ``1/f``, so the exact projection is cheap.

    Args:
        factor: Block size per axis.
        hr_shape: High-resolution size ``(H, W)``, multiples of ``factor``.

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

    def _spread(self, y: torch.Tensor) -> torch.Tensor:
        return y.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``D^H y``: every HR voxel of a block gets ``y / f^2``; y ``(B, h, w)`` -> x ``(B, H, W)``."""
        return self._spread(y) / self.factor**2

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + D^H (D D^H)^-1 (y - D x)``: add each block's residual to all its voxels, so block means equal y."""
        return x + self._spread(y - self.forward(x))

    def repeat_interleave(self, k: int) -> AreaDownsample:
        """The same operator (it holds no per-sample state)."""
        return self

    def to(self, device: torch.device | str) -> AreaDownsample:
        """The same operator (it holds no tensors)."""
        return self

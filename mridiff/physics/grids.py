"""The two low-resolution physics of super-resolution and the grid each puts the high-resolution image on.

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

import torch

from mridiff.physics.fft import fft2c, ifft2c
from mridiff.physics.operators import AreaDownsample, KspaceCrop, Operator

SR_SCALES: tuple[int, ...] = (2, 4)
LR_MODELS: tuple[str, ...] = ("kspace", "image")


def check_scale(scale: int) -> int:
    """Return ``scale`` if it is a supported factor (2 or 4).

    Raises:
        ValueError: For any other factor.

    """
    if scale not in SR_SCALES:
        raise ValueError(f"scale {scale} is not supported (choose one of {', '.join(map(str, SR_SCALES))})")
    return int(scale)


def check_lr_model(lr_model: str) -> str:
    """Return ``lr_model`` if it is ``"kspace"`` or ``"image"``.

    Raises:
        ValueError: For any other name.

    """
    if lr_model not in LR_MODELS:
        raise ValueError(f"unknown low-resolution model {lr_model!r} (choose one of {', '.join(LR_MODELS)})")
    return lr_model


def hr_offset(n_lr: int, scale: int, lr_model: str) -> float:
    """HR index of the centre of LR voxel 0 (LR voxel ``i`` sits at ``scale * i + offset``; see module doc)."""
    if check_lr_model(lr_model) == "kspace":
        return float((scale * n_lr) // 2 - scale * (n_lr // 2))
    return (scale - 1) / 2.0


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
    if check_lr_model(lr_model) == "kspace":
        return hr
    shift = (hr_offset(h, scale, "image") - hr_offset(h, scale, "kspace"),
             hr_offset(w, scale, "image") - hr_offset(w, scale, "kspace"))
    return fourier_shift(hr, shift)


def lowres_operator(scale: int, hr_shape: tuple[int, int], lr_model: str) -> Operator:
    """The forward operator of ``lr_model`` for HR images of size ``hr_shape``."""
    if check_lr_model(lr_model) == "kspace":
        return KspaceCrop(scale, hr_shape)
    return AreaDownsample(scale, hr_shape)


def measurement(lr: torch.Tensor, scale: int, lr_model: str) -> torch.Tensor:
    """What ``lowres_operator`` measures for LR images ``(B, h, w)``: ``s F lr`` (k-space block) or ``lr`` itself.

    With orthonormal FFTs, cropping k-space by ``s`` per axis divides intensities by ``s``; the factor ``s`` puts
    the block back in HR units (:meth:`KspaceCrop.lowres_image` divides by it again).
    """
    return scale * fft2c(lr) if check_lr_model(lr_model) == "kspace" else lr


def simulate_lowres(hr: torch.Tensor, scale: int, lr_model: str = "kspace") -> torch.Tensor:
    """Low-resolution images ``(B, H/s, W/s)`` of complex HR images ``(B, H, W)`` (same intensity scale).

    Raises:
        ValueError: When ``scale`` is not 2 or 4 or does not divide H and W.

    """
    check_scale(scale)
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"scale {scale} does not divide the image size ({height}, {width}) (crop or pad the "
                         "high-resolution image to a multiple of the scale)")
    op = lowres_operator(scale, (height, width), lr_model)
    y = op.forward(hr)
    return op.lowres_image(y) if isinstance(op, KspaceCrop) else y

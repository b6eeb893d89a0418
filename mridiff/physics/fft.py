"""Centred, orthonormal 2D Fourier transforms on complex tensors.

Thin wrappers around :func:`fastmri.fft2c` / :func:`fastmri.ifft2c`, which work on real tensors with a trailing
axis of size 2; inside mridiff images and k-space are complex tensors, so the wrappers convert at the boundary.
"""

from __future__ import annotations

import fastmri
import torch


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    if x.is_complex():
        return x
    # Real images (e.g. magnitudes) are accepted; keep their precision instead of forcing complex64.
    return torch.complex(x, torch.zeros_like(x))


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two axes.

    Args:
        x: Image, complex tensor ``(..., H, W)`` (complex64 in the package; real input is promoted).

    Returns:
        k-space, complex tensor ``(..., H, W)`` of the same complex dtype, DC at index ``(H // 2, W // 2)``.

    """
    x = _as_complex(x)
    # view_as_real needs a contiguous last axis; fastmri returns a fresh tensor that view_as_complex accepts.
    out = fastmri.fft2c(torch.view_as_real(x.contiguous()))
    return torch.view_as_complex(out.contiguous())


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over the last two axes (the exact inverse and adjoint of :func:`fft2c`).

    Args:
        k: k-space, complex tensor ``(..., H, W)`` with DC at ``(H // 2, W // 2)`` (real input is promoted).

    Returns:
        Image, complex tensor ``(..., H, W)`` of the same complex dtype.

    """
    k = _as_complex(k)
    out = fastmri.ifft2c(torch.view_as_real(k.contiguous()))
    return torch.view_as_complex(out.contiguous())

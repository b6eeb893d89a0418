"""Array transforms shared by the data pipeline: centre crop and percentile normalisation.

Each function accepts numpy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# torch.quantile refuses inputs above 2**24 elements; larger inputs go through numpy.
_TORCH_QUANTILE_LIMIT = 2**24


def center_crop(x: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Crop the last two dimensions to ``shape`` around the centre, as ``fastmri.data.transforms.center_crop``.

    Args:
        x: Array or tensor ``(..., H, W)``, real or complex.
        shape: Output ``(h, w)`` with ``0 < h <= H`` and ``0 < w <= W``.

    Returns:
        A view ``(..., h, w)``; for odd margins the extra row/column is dropped at the end, like fastmri.

    Raises:
        ValueError: If ``shape`` does not fit inside ``x``.

    """
    h, w = int(shape[0]), int(shape[1])
    if x.ndim < 2 or not (0 < h <= x.shape[-2] and 0 < w <= x.shape[-1]):
        raise ValueError(f"cannot centre-crop shape {tuple(x.shape)} to {(h, w)}")
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def _quantile_of_magnitude(x: np.ndarray | torch.Tensor, q: float) -> float:
    if isinstance(x, torch.Tensor):
        mag_t = x.detach().abs().reshape(-1)
        if mag_t.numel() <= _TORCH_QUANTILE_LIMIT:
            return float(torch.quantile(mag_t.to(torch.float64), q / 100.0))
        return float(np.percentile(mag_t.cpu().numpy(), q))
    return float(np.percentile(np.abs(x), q))


def percentile_scale(x: np.ndarray | torch.Tensor, q: float = 99.0) -> float:
    """The ``q``-th percentile of ``|x|``: the per-image normalisation of training and inference alike.

    Args:
        x: Complex or real image(s), numpy or torch, any shape; the percentile is taken over all elements.
        q: Percentile in ``(0, 100]``.

    Returns:
        The percentile; the maximum magnitude when it is 0 (a mostly empty image), and 1.0 for an all-zero input,
        so dividing by it is always defined.

    Raises:
        ValueError: If ``q`` is outside ``(0, 100]`` or ``x`` is empty.

    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    size = x.numel() if isinstance(x, torch.Tensor) else x.size
    if size == 0:
        raise ValueError("cannot normalise an empty array")
    scale = _quantile_of_magnitude(x, q)
    if not scale > 0.0:
        scale = _quantile_of_magnitude(x, 100.0)
    return scale if scale > 0.0 and np.isfinite(scale) else 1.0


def normalise_percentile(x: ArrayT, q: float = 99.0) -> tuple[ArrayT, float]:
    """Divide ``x`` by :func:`percentile_scale` of it.

    Returns:
        ``(x / scale, scale)``; multiply by ``scale`` to undo.

    Raises:
        ValueError: If ``q`` is outside ``(0, 100]`` or ``x`` is empty.

    """
    scale = percentile_scale(x, q)
    return x / scale, scale

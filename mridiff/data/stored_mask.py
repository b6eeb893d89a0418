"""The one parser for sampling masks handed in by users: a file's ``mask`` dataset or an API argument."""

from __future__ import annotations

from os import PathLike

import numpy as np

from mridiff.errors import InputError


def parse_mask(arr: np.ndarray, kspace_shape: tuple[int, int], path: str | PathLike[str] | None = None) -> np.ndarray:
    """Turn a stored mask into a float32 ``(H, W)`` array of 0/1 for k-space of size ``kspace_shape``.

    Args:
        arr: A 1D column mask ``(W,)``, ``(1, W)``, a 2D mask ``(H, W)``, or one of fastMRI's broadcastable shapes
            (``MaskFunc`` and ``apply_mask`` give ``(1, W, 1)``, ``(1, 1, W, 1)``, ...). Boolean or 0/1 values.
        kspace_shape: k-space size ``(H, W)``.
        path: The file the mask came from, for messages.

    Returns:
        An owned float32 array ``(H, W)``.

    Raises:
        InputError: If the mask does not fit ``(H, W)``, has a non-numeric dtype, NaN/Inf or values other than
            0 and 1, or samples nothing.

    """
    height, width = kspace_shape
    data = np.asarray(arr)
    shape = data.shape
    if data.dtype.kind not in "biuf":
        raise InputError(path, f"mask has unsupported dtype {data.dtype}")
    if data.ndim > 2 and data.shape[-1] == 1 and data.shape[-2] == width:
        data = data[..., 0]  # fastMRI keeps a trailing size-1 axis standing for the real/imaginary pair
    if data.ndim > 2 and all(s == 1 for s in data.shape[:-2]):
        data = data.reshape(data.shape[-2:])
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if data.ndim != 2 or data.shape[0] not in (1, height) or data.shape[1] != width:
        raise InputError(path, f"mask shape {shape} does not fit k-space (H, W) = {tuple(kspace_shape)}",
                         "expected (W,), (H, W) or a fastMRI-style shape like (1, 1, W, 1)")
    values = data.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError(path, "mask contains NaN or Inf")
    if not np.all((values == 0) | (values == 1)):
        raise InputError(path, "mask values must be 0 or 1")
    if not values.any():
        raise InputError(path, "mask samples no k-space points (all zeros)")
    return np.array(np.broadcast_to(values, (height, width)), dtype=np.float32)

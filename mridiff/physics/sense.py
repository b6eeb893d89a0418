"""The SENSE normal operator ``S^H F^H M^2 F S`` in one pass, for :meth:`MultiCoil.normal` (CG's inner loop)."""

from __future__ import annotations

import torch

# Complex elements per block of MultiCoil.normal (1 MiB of complex64): fits a core's cache.
NORMAL_BLOCK = 1 << 17


def fold_shifts(mask: torch.Tensor, sens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Coil maps and squared mask for :func:`sense_normal`, with the centring shifts folded in.

    With ``fft2c = fftshift . fft2 . ifftshift``, ``S^H ifft2c(M fft2c(S x)) = fftshift(S'^H ifft2(M' fft2(S'
    ifftshift(x))))`` where ``S' = ifftshift(S)`` and ``M' = ifftshift(M)``. When every row of the mask is the same,
    ``M`` acts along the columns only and commutes with the row FFT, which then cancels: the same identity holds
    with 1D transforms along the last axis.

    Returns:
        ``(S', M'^2, dims)``: the shifted maps, the shifted squared mask shaped to broadcast against ``(B, C, H, W)``
        and the axes to transform.

    """
    columns_only = bool((mask == mask[..., :1, :]).all())
    dims: tuple[int, ...] = (-1,) if columns_only else (-2, -1)
    folded = (mask[..., :1, :] if columns_only else mask) ** 2
    if folded.ndim == 3:
        folded = folded.unsqueeze(-3)  # (B, 1, H|1, W): one mask per sample, shared by its coils
    return torch.fft.ifftshift(sens, dim=dims), torch.fft.ifftshift(folded, dim=dims), dims



def sense_normal(x: torch.Tensor, sens: torch.Tensor, sens_conj: torch.Tensor, mask: torch.Tensor,
                 dims: tuple[int, ...]) -> torch.Tensor:
    """``S^H F^H M^2 F S x`` (unscaled) from the outputs of :func:`fold_shifts` (``sens_conj``: their conjugate).

    Args:
        x: Images ``(B, H, W)`` complex.
        sens: Shifted coil maps ``(B, C, H, W)`` or ``(C, H, W)``.
        sens_conj: Their conjugate, materialised (a lazy conjugate multiplies about 2x slower).
        mask: Shifted squared mask, broadcastable against ``(B, C, H, W)``.
        dims: The axes to transform.

    Returns:
        ``(B, H, W)`` complex.

    """
    sens, sens_conj = sens.to(x.device), sens_conj.to(x.device)
    mask = mask.to(x.device)
    shifted = torch.fft.ifftshift(x, dim=dims)
    image = torch.empty_like(x)
    # Memory traffic, not arithmetic, bounds this on a CPU: with a column-only mask every row is independent,
    # so blocks of rows small enough to stay in cache go through all steps at once, in place.
    height, width = x.shape[-2:]
    rows = height if len(dims) == 2 else max(1, NORMAL_BLOCK // (x.shape[0] * sens.shape[-3] * width))
    for start in range(0, height, rows):
        block = slice(start, start + rows)
        coils = sens[..., block, :] * shifted[..., block, :].unsqueeze(-3)
        torch.fft.fftn(coils, dim=dims, norm="ortho", out=coils).mul_(mask)
        torch.fft.ifftn(coils, dim=dims, norm="ortho", out=coils).mul_(sens_conj[..., block, :])
        image[..., block, :] = coils.sum(dim=-3)
    return torch.fft.fftshift(image, dim=dims)

"""Undersampling masks: fastMRI's 1D Cartesian mask functions plus 2D Poisson-disc and Gaussian masks.

Every mask is a float32 ``(H, W)`` tensor of zeros and ones, indexed like centred k-space (DC at ``(H//2, W//2)``).
1D masks select columns (the phase-encode axis, last) and are broadcast along rows, as in fastMRI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from fastmri.data import subsample

DEFAULT_CENTER_FRACTIONS: dict[int, float] = {4: 0.08, 8: 0.04}
MASK_KINDS = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction", "poisson", "gaussian2d")

# Explicit name -> class table (no string imports): the five 1D kinds are fastMRI's own mask functions.
_FASTMRI_MASKS: dict[str, type[subsample.MaskFunc]] = {
    "random": subsample.RandomMaskFunc,
    "equispaced": subsample.EquiSpacedMaskFunc,
    "equispaced_fraction": subsample.EquispacedMaskFractionFunc,
    "magic": subsample.MagicMaskFunc,
    "magic_fraction": subsample.MagicMaskFractionFunc,
}

# Width of the Gaussian sampling density in units of the k-space half-width: wide enough that the outer k-space
# keeps some samples at 8x, narrow enough that the density still falls off clearly at 4x.
_GAUSSIAN_SIGMA = 0.5


def default_center_fraction(acc: int) -> float:
    """Fraction of fully sampled centre lines used when a spec leaves it open.

    Args:
        acc: Acceleration factor.

    Returns:
        fastMRI's value for 4x and 8x; otherwise ``0.32 / acc``, which extends the same rule.

    """
    return DEFAULT_CENTER_FRACTIONS.get(acc, 0.32 / acc)


@dataclass(frozen=True)
class MaskSpec:
    """What mask to draw.

    Args:
        kind: One of :data:`MASK_KINDS`.
        acceleration: Undersampling factor (>= 1).
        center_fraction: Fraction of each undersampled axis that is fully sampled around DC; ``None`` uses
            :func:`default_center_fraction`.

    """

    kind: str
    acceleration: int
    center_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in MASK_KINDS:
            raise ValueError(f"unknown mask kind {self.kind!r} (choose one of {', '.join(MASK_KINDS)})")
        if self.acceleration < 1:
            raise ValueError(f"acceleration must be >= 1, got {self.acceleration}")
        if self.center_fraction is not None and not 0.0 < self.center_fraction <= 1.0:
            raise ValueError(f"center_fraction must be in (0, 1], got {self.center_fraction}")

    @property
    def fraction(self) -> float:
        """The centre fraction actually used."""
        return self.center_fraction if self.center_fraction is not None else default_center_fraction(self.acceleration)


def make_mask(spec: MaskSpec, shape: tuple[int, int], seed: int | None) -> torch.Tensor:
    """Draw an undersampling mask.

    Args:
        spec: Kind, acceleration and centre fraction.
        shape: k-space size ``(H, W)``.
        seed: Seed for reproducible masks; ``None`` draws a fresh one.

    Returns:
        float32 tensor ``(H, W)`` of 0/1. 1D kinds equal fastMRI's mask function output for the same seed.

    """
    height, width = shape
    if spec.acceleration == 1:
        return torch.ones(height, width, dtype=torch.float32)
    if spec.kind in _FASTMRI_MASKS:
        _check_centre(round(width * spec.fraction) * spec.acceleration >= width, spec)
        func = _FASTMRI_MASKS[spec.kind]([spec.fraction], [spec.acceleration])
        # fastMRI masks take a k-space shape (..., H, W, 2) and read the column count from shape[-2].
        cols: torch.Tensor = func((1, height, width, 1), seed=seed)[0]
        return cols.reshape(1, width).expand(height, width).contiguous()
    box = (max(round(height * spec.fraction), 1), max(round(width * spec.fraction), 1))
    _check_centre(box[0] * box[1] * spec.acceleration >= height * width, spec)
    if spec.kind == "poisson":
        return _poisson(shape, spec.acceleration, box, seed)
    return _gaussian2d(shape, spec.acceleration, box, seed)


def _check_centre(too_big: bool, spec: MaskSpec) -> None:
    # fastMRI's fraction masks divide by zero, and sigpy's Poisson search fails, when the centre alone already
    # reaches the acceleration; say so plainly instead.
    if too_big:
        raise ValueError(f"centre fraction {spec.fraction:g} alone samples at least 1/{spec.acceleration} "
                         "of k-space (lower center_fraction or the acceleration)")


POISSON_MAX_BISECTIONS = 40
POISSON_REL_TOL = 0.1
POISSON_SEED_RETRIES = 5


def _poisson_search(nx: int, ny: int, r: np.ndarray, box: tuple[int, int], acc: int,
                    seed: int) -> tuple[float, np.ndarray]:
    """Bisect sigpy's density slope (a bounded number of times); return (acceleration, mask) closest to ``acc``."""
    from sigpy.mri.samp import _poisson as sigpy_poisson

    lo, hi = 0.0, float(max(nx, ny))
    best: tuple[float, np.ndarray] | None = None
    for _ in range(POISSON_MAX_BISECTIONS):
        slope = (lo + hi) / 2
        rx = np.clip((1 + r * slope) * nx / max(nx, ny), 1, None)
        ry = np.clip((1 + r * slope) * ny / max(nx, ny), 1, None)
        mask = sigpy_poisson(nx, ny, 30, rx, ry, box, seed) * (r < 1)
        actual = nx * ny / max(float(mask.sum()), 1.0)
        if best is None or abs(actual - acc) < abs(best[0] - acc):
            best = (actual, mask)
        if abs(actual - acc) < 0.01 * acc:
            break
        lo, hi = (slope, hi) if actual < acc else (lo, slope)
    assert best is not None
    return best


def _poisson(shape: tuple[int, int], acc: int, box: tuple[int, int], seed: int | None) -> torch.Tensor:
    """Variable-density Poisson-disc mask through sigpy's sampler, with a bounded search on the density slope.

    ``sigpy.mri.poisson`` bisects the slope until the acceleration is within an absolute 0.1, and on small
    grids (e.g. 32x32) that bisection can stall forever; here it stops after a fixed number of halvings and
    accepts the closest mask within 10% of the target acceleration.
    """
    if seed is None:
        # sigpy would otherwise use numba's global random state, which nobody can reproduce afterwards.
        seed = int(np.random.default_rng().integers(2**31 - 1))
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    x = np.maximum(abs(xx - nx / 2) - box[1] / 2, 0)
    x = x / max(x.max(), 1e-12)
    y = np.maximum(abs(yy - ny / 2) - box[0] / 2, 0)
    y = y / max(y.max(), 1e-12)
    r = np.sqrt(x**2 + y**2)
    best: tuple[float, np.ndarray] | None = None
    state = np.random.get_state()  # sigpy's sampler seeds numpy's global state; leave it as we found it
    try:
        # For a few seeds sigpy's sampler places no point outside the calibration box at any density; the next
        # seed (still deterministic) then stands in.
        for offset in range(POISSON_SEED_RETRIES):
            found = _poisson_search(nx, ny, r, box, acc, (seed + offset) % (2**31 - 1))
            if best is None or abs(found[0] - acc) < abs(best[0] - acc):
                best = found
            if abs(best[0] - acc) <= POISSON_REL_TOL * acc:
                break
    finally:
        np.random.set_state(state)
    assert best is not None
    if abs(best[0] - acc) > POISSON_REL_TOL * acc:
        raise ValueError(f"cannot draw a Poisson-disc mask for {acc}x on {shape} (closest {best[0]:.2f}x; lower the "
                         "acceleration or the centre fraction)")
    return torch.from_numpy(np.ascontiguousarray(best[1].reshape(shape), dtype=np.float32))


def _gaussian2d(shape: tuple[int, int], acc: int, box: tuple[int, int], seed: int | None) -> torch.Tensor:
    height, width = shape
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=np.float32)
    r0, c0 = height // 2 - box[0] // 2, width // 2 - box[1] // 2
    mask[r0 : r0 + box[0], c0 : c0 + box[1]] = 1.0
    n_extra = round(height * width / acc) - int(mask.sum())
    if n_extra > 0:
        ky = (np.arange(height) - height // 2) / (height / 2)
        kx = (np.arange(width) - width // 2) / (width / 2)
        density = np.exp(-(ky[:, None] ** 2 + kx[None, :] ** 2) / (2 * _GAUSSIAN_SIGMA**2))
        density[mask > 0] = 0.0
        # Drawing exactly n_extra distinct points (not Bernoulli per pixel) hits the acceleration exactly.
        n_extra = min(n_extra, int(np.count_nonzero(density)))
        idx = rng.choice(density.size, size=n_extra, replace=False, p=(density / density.sum()).ravel())
        mask.ravel()[idx] = 1.0
    return torch.from_numpy(mask)


def _run_around_centre(ok: np.ndarray) -> tuple[int, int]:
    """Count true entries in a row left of ``n // 2`` and from ``n // 2`` on; ``(0, 0)`` if ``ok[n // 2]`` is false."""
    c = ok.shape[0] // 2
    if not ok[c]:
        return 0, 0
    right, left = ok[c:], ok[:c][::-1]
    n_right = right.size if right.all() else int(np.argmin(right))
    n_left = left.size if left.all() else int(np.argmin(left))
    return n_left, n_right


def _centred_extent(ok: np.ndarray) -> int:
    """Find the largest k with ok[n//2 - k//2 : n//2 - k//2 + k] all true (sigpy's and KspaceCrop's crop)."""
    n_left, n_right = _run_around_centre(ok)
    if n_right == 0:
        return 0
    return max(2 * min(n_left, n_right), 2 * min(n_left, n_right - 1) + 1)


def acs_box(mask: torch.Tensor) -> tuple[int, int]:
    """Size of the largest fully sampled box centred on DC (works for 1D and 2D masks).

    A box of size ``(r, c)`` covers rows ``H//2 - r//2 ...`` and columns ``W//2 - c//2 ...``, the convention
    of sigpy's calibration crop, so the result can be used directly as a calibration region.

    Args:
        mask: ``(H, W)`` mask (nonzero = sampled).

    Returns:
        ``(rows, cols)`` of the largest-area such box; ``(0, 0)`` if DC is not sampled.

    """
    m = mask.detach().cpu().numpy() > 0
    height = m.shape[0]
    best, best_area = (0, 0), 0
    start = height // 2
    cols_ok = np.ones(m.shape[1], dtype=bool)
    for rows in range(1, height + 1):
        # Growing the centred box by one row adds a row above when the new size is even, below when odd.
        if rows % 2 == 0:
            start -= 1
            new_row = start
        else:
            new_row = start + rows - 1
        if new_row < 0 or new_row >= height:
            break
        cols_ok &= m[new_row]
        cols = _centred_extent(cols_ok)
        if cols == 0:
            break
        if rows * cols > best_area:
            best, best_area = (rows, cols), rows * cols
    return best

"""Training-time augmentation of magnitude images: random intensity remapping and small geometric changes.

The intensity remapping makes a prior learn anatomy and edges rather than one contrast: a model trained only on
T1-weighted slices has learnt "white matter is bright", and pulls a T2-weighted scan towards T1. The geometric
changes (flips, small rotations, zoom) cover the fields of view and matrix sizes seen at inference.

All functions take and return float ``(H, W)`` arrays in [0, 1] (background near 0) and draw from a numpy
``Generator``, so that a seeded stream gives the same examples.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform

REMAP_KINDS = ("identity", "gamma", "monotone_lut", "smooth_lut", "inversion")
# Identity keeps T1 itself in the mix (about a quarter of the examples); the rest spread over the other kinds.
REMAP_PROBS = (0.25, 0.2, 0.2, 0.15, 0.2)
LUT_KNOTS = 8
FOREGROUND_LEVEL = 0.1


def foreground_mask(img: np.ndarray, level: float = FOREGROUND_LEVEL) -> np.ndarray:
    """A soft (0..1) object mask: ``clip(img / level, 0, 1)^2``.

    It follows the image's own edges, so remapping adds no bright rim around the head (a blurred binary mask
    would reach into the air), and it keeps air, bone and background noise near 0 after an inversion, as they
    are in T2-weighted images.
    """
    return np.clip(img / level, 0.0, 1.0) ** 2


def _lut(values: np.ndarray, img: np.ndarray) -> np.ndarray:
    knots = np.linspace(0.0, 1.0, len(values))
    return np.interp(img, knots, values)


def remap_intensity(img: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Randomly remap the intensities of a [0, 1] magnitude image, keeping the background dark.

    Kinds: ``gamma`` (x^g, g log-uniform in [0.4, 2.5]); ``monotone_lut`` (a random increasing piecewise-linear
    curve); ``smooth_lut`` (a random non-monotone curve: tissues swap order, as between T1 and T2 or FLAIR);
    ``inversion`` (1 - x^g inside the object, so dark fluid becomes bright, a T2-like change). The result is
    multiplied by the object's soft mask for the non-monotone kinds, so air stays air.

    Args:
        img: float ``(H, W)`` in [0, 1].
        rng: random generator.
        kind: one of :data:`REMAP_KINDS`, or ``None`` to draw one.

    Returns:
        float32 ``(H, W)`` in [0, 1].

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if kind is None:
        kind = str(rng.choice(REMAP_KINDS, p=REMAP_PROBS))
    x = np.clip(img.astype(np.float32), 0.0, 1.0)
    if kind == "identity":
        out = x
    elif kind == "gamma":
        out = x ** float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
    elif kind == "monotone_lut":
        steps = rng.gamma(1.0, size=LUT_KNOTS - 1)
        out = _lut(np.concatenate([[0.0], np.cumsum(steps) / steps.sum()]), x)
    elif kind == "smooth_lut":
        values = rng.uniform(0.1, 1.0, size=LUT_KNOTS)
        values[0] = 0.0
        out = _lut(values, x) * foreground_mask(x)
    elif kind == "inversion":
        gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        out = (1.0 - x**gamma) * foreground_mask(x)
    else:
        raise ValueError(f"unknown intensity remap {kind!r}; choose from {', '.join(REMAP_KINDS)}")
    peak = float(np.percentile(out, 99.5))
    return np.clip(out / peak, 0.0, 1.0).astype(np.float32) if peak > 0 else out.astype(np.float32)


def t2_like(img: np.ndarray) -> np.ndarray:
    """A fixed T2-like contrast for evaluation only (never drawn in training).

    Inside the object, intensity follows a fixed non-monotone curve that makes the darkest tissue (fluid in a T1
    image) brightest and the enhancing tissue mid-grey, close to how CSF, grey and white matter order in T2:
    ``f(x) = 0.9 - 0.75 x + 0.35 sin(3 pi x) * x``, times the soft object mask.
    """
    x = np.clip(img.astype(np.float32), 0.0, 1.0)
    out = (0.9 - 0.75 * x + 0.35 * np.sin(3.0 * np.pi * x) * x) * foreground_mask(x)
    peak = float(np.percentile(out, 99.5))
    return np.clip(out / peak, 0.0, 1.0).astype(np.float32) if peak > 0 else out.astype(np.float32)


def random_geometry(img: np.ndarray, rng: np.random.Generator, max_rot_deg: float = 10.0,
                    zoom: tuple[float, float] = (0.8, 1.25)) -> np.ndarray:
    """Random flips, a small rotation and a zoom about the centre (linear interpolation, zero outside).

    Zoom < 1 shrinks the anatomy (a larger field of view, as a 320x320 scan of the same head), > 1 enlarges it.
    """
    out = img
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.2:
        out = out[::-1, :]
    angle = np.deg2rad(rng.uniform(-max_rot_deg, max_rot_deg))
    scale = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = (np.array(out.shape, dtype=np.float64) - 1) / 2
    offset = centre - matrix @ centre
    return affine_transform(np.ascontiguousarray(out), matrix, offset=offset, order=1, mode="constant",
                            cval=0.0).astype(np.float32)

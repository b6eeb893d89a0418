"""Intensity remapping and geometry for contrast- and resolution-agnostic training."""

from __future__ import annotations

import numpy as np
import pytest

from mridiff.data.augmentation import REMAP_KINDS, random_geometry, remap_intensity, t2_like
from tests.helpers import head_volume


def image() -> np.ndarray:
    img = head_volume((64, 64, 3), 0)[:, :, 1]
    return img / img.max()


@pytest.mark.parametrize("kind", REMAP_KINDS)
def test_remap_stays_in_range_and_keeps_air_dark(kind: str) -> None:
    img = image()
    out = remap_intensity(img, np.random.default_rng(1), kind)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(out[img == 0]).max() < 0.05  # background (air) stays dark even after inversion


def test_monotone_kinds_keep_order_and_inversion_reverses_it() -> None:
    img = image()
    inside = img > 0.2
    for kind in ("gamma", "monotone_lut"):
        out = remap_intensity(img, np.random.default_rng(2), kind)
        order = np.argsort(img[inside])
        assert np.all(np.diff(out[inside][order]) >= -1e-6)
    inv = remap_intensity(img, np.random.default_rng(2), "inversion")
    core = img > 0.5
    assert np.corrcoef(img[core], inv[core])[0, 1] < -0.5


def test_remap_is_reproducible_and_varied() -> None:
    img = image()
    a = remap_intensity(img, np.random.default_rng(3))
    b = remap_intensity(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    draws = {remap_intensity(img, np.random.default_rng(s)).tobytes() for s in range(12)}
    assert len(draws) > 6
    with pytest.raises(ValueError, match="unknown intensity remap"):
        remap_intensity(img, np.random.default_rng(0), "sepia")


def test_t2_like_makes_dark_tissue_bright() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (8, 1))
    out = t2_like(ramp)
    assert out[:, 13].mean() > out[:, 58].mean()  # x = 0.2 (fluid in T1) ends brighter than x = 0.9
    assert out[:, 0].max() == 0.0  # air stays dark
    assert out.min() >= 0 and out.max() <= 1


def test_geometry_keeps_shape_and_identity_at_zero_spread() -> None:
    img = image()
    out = random_geometry(img, np.random.default_rng(0))
    assert out.shape == img.shape and np.isfinite(out).all()
    rng = np.random.default_rng(5)
    same = random_geometry(img, rng, max_rot_deg=0.0, zoom=(1.0, 1.0))
    # only flips can remain
    assert any(np.allclose(same, f, atol=1e-5) for f in (img, img[:, ::-1], img[::-1], img[::-1, ::-1]))

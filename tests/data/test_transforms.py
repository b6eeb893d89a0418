from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri.data import transforms as T

from mridiff.data.transforms import center_crop, normalise_percentile


@pytest.mark.parametrize(("shape", "crop"), [((2, 9, 12), (4, 5)), ((8, 8), (8, 8)), ((3, 1, 11, 7), (6, 3))])
def test_center_crop_matches_fastmri(shape, crop):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    expected = T.center_crop(x, crop)
    assert torch.equal(center_crop(x, crop), expected)
    np.testing.assert_array_equal(center_crop(x.numpy(), crop), expected.numpy())


def test_center_crop_complex_and_invalid():
    x = (np.ones((6, 6)) * (1 + 2j)).astype(np.complex64)
    assert center_crop(x, (2, 2)).dtype == np.complex64
    with pytest.raises(ValueError):
        center_crop(x, (7, 2))
    with pytest.raises(ValueError):
        center_crop(x, (0, 2))


def test_normalise_percentile_numpy_torch_agree():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 16, 16)) + 1j * rng.normal(size=(4, 16, 16))).astype(np.complex64)
    y, scale = normalise_percentile(x, 99.0)
    assert scale == pytest.approx(np.percentile(np.abs(x), 99.0), rel=1e-5)
    assert y.dtype == np.complex64
    np.testing.assert_allclose(np.percentile(np.abs(y), 99.0), 1.0, rtol=1e-5)
    yt, scale_t = normalise_percentile(torch.from_numpy(x), 99.0)
    assert scale_t == pytest.approx(scale, rel=1e-5)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-5)
    np.testing.assert_allclose(y * scale, x, rtol=1e-5)


def test_normalise_percentile_degenerate():
    x = np.zeros((16, 16), np.float32)
    x[0, 0] = 2.0  # the 99th percentile is 0: fall back to the maximum
    assert normalise_percentile(x)[1] == 2.0
    assert normalise_percentile(np.zeros((4, 4)))[1] == 1.0
    with pytest.raises(ValueError):
        normalise_percentile(x, 0.0)

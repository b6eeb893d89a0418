from __future__ import annotations

import fastmri
import numpy as np
import pytest
import torch

from mridiff.data.simulate import (
    add_complex_noise,
    fft2c_np,
    ifft2c_np,
    simulate_coil_maps,
    simulate_kspace,
    smooth_phase,
)


def disc(n: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    return np.where(r < n * 0.35, 1.0 + 0.5 * np.cos(yy / 3.0), 0.0).astype(np.float32)


def test_numpy_fft_matches_fastmri():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 20, 17)) + 1j * rng.normal(size=(3, 20, 17))).astype(np.complex64)
    ref = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(torch.from_numpy(x)))).numpy()
    np.testing.assert_allclose(fft2c_np(x), ref, atol=1e-5)
    np.testing.assert_allclose(ifft2c_np(fft2c_np(x)), x, atol=1e-5)


@pytest.mark.parametrize("n_coils", [1, 4, 8, 15])
def test_coil_maps_sum_of_squares_is_one(n_coils):
    support = disc(64) > 0
    maps = simulate_coil_maps((64, 64), n_coils, np.random.default_rng(n_coils), support=support)
    assert maps.shape == (n_coils, 64, 64) and maps.dtype == np.complex64
    sos = np.sum(np.abs(maps) ** 2, axis=0)
    np.testing.assert_allclose(sos[support], 1.0, atol=1e-5)
    assert np.all(sos[~support] == 0)
    full = simulate_coil_maps((48, 40), n_coils, np.random.default_rng(0))
    np.testing.assert_allclose(np.sum(np.abs(full) ** 2, axis=0), 1.0, atol=1e-5)


def test_coil_maps_are_smooth_and_distinct():
    maps = simulate_coil_maps((64, 64), 8, np.random.default_rng(3))
    mag = np.abs(maps)
    assert np.max(np.abs(np.diff(mag, axis=-1))) < 0.1  # no jumps between neighbouring pixels
    peaks = {np.unravel_index(np.argmax(m), m.shape) for m in mag}
    assert len(peaks) == 8  # each coil looks at a different part of the object


def test_smooth_phase_bounds_and_smoothness():
    rng = np.random.default_rng(0)
    for _ in range(5):
        phi = smooth_phase((64, 48), rng, max_rad=np.pi / 2)
        assert phi.dtype == np.float32 and phi.shape == (64, 48)
        peak = np.abs(phi).max()
        assert np.pi / 4 - 1e-6 <= peak <= np.pi / 2 + 1e-6
        assert np.abs(np.diff(phi, axis=0)).max() < 0.2
    assert not smooth_phase((8, 8), rng, max_rad=0.0).any()


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0])
def test_noise_at_requested_snr(snr_db):
    rng = np.random.default_rng(int(snr_db))
    clean = fft2c_np(disc(128).astype(np.complex64))
    noisy = add_complex_noise(clean, snr_db, rng)
    assert noisy.dtype == clean.dtype
    noise_power = np.mean(np.abs(noisy - clean) ** 2)
    expected = np.mean(np.abs(clean) ** 2) / 10 ** (snr_db / 10)
    assert noise_power == pytest.approx(expected, rel=0.1)
    noise = noisy - clean  # white: real and imaginary parts share the variance, uncorrelated
    assert np.var(noise.real) == pytest.approx(np.var(noise.imag), rel=0.1)


def test_simulate_single_coil():
    img = disc(64)
    scan = simulate_kspace(img, 1, np.random.default_rng(0))
    assert scan.kspace.shape == (64, 64) and scan.kspace.dtype == np.complex64 and scan.sens is None
    assert scan.noise_std == 0.0
    np.testing.assert_allclose(np.abs(scan.image), img, atol=1e-5)
    np.testing.assert_allclose(ifft2c_np(scan.kspace), scan.image, atol=1e-5)
    assert np.abs(np.angle(scan.image[img > 0])).max() <= np.pi / 2 + 1e-5
    assert simulate_kspace(img, 0, np.random.default_rng(0)).kspace.shape == (64, 64)


def test_simulate_multi_coil_rss_equals_magnitude():
    img = disc(64)
    scan = simulate_kspace(img, 6, np.random.default_rng(0))
    assert scan.kspace.shape == (6, 64, 64) and scan.sens.shape == (6, 64, 64)
    coil_images = ifft2c_np(scan.kspace)
    np.testing.assert_allclose(np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=0)), img, atol=1e-5)
    combined = np.sum(np.conj(scan.sens) * coil_images, axis=0)  # SENSE combination recovers the image
    np.testing.assert_allclose(combined, scan.image, atol=1e-5)


def test_simulate_is_seeded_and_noisy_when_asked():
    img = disc(32)
    a = simulate_kspace(img, 4, np.random.default_rng(7), snr_db=20.0)
    b = simulate_kspace(img, 4, np.random.default_rng(7), snr_db=20.0)
    np.testing.assert_array_equal(a.kspace, b.kspace)
    clean = fft2c_np(a.sens * a.image[None])
    assert np.mean(np.abs(a.kspace - clean) ** 2) == pytest.approx(a.noise_std**2, rel=0.1)
    with pytest.raises(ValueError):
        simulate_kspace(np.ones((2, 4, 4)), 1, np.random.default_rng(0))

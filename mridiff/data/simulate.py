"""Simulated k-space from magnitude images: smooth phase, coil sensitivities, complex Gaussian noise.

Model, for a magnitude image ``m`` (H, W):

* phase: ``x = m * exp(i * phi)`` with ``phi`` a random 2nd-order polynomial field, ``|phi| <= max_rad``;
* coils: ``C`` loop coils evenly spaced (with jitter) on a circle just outside the field of view; the magnitude of
  each map falls off like the on-axis field of a current loop, ``(d^2 + a^2)^(-3/2)``, and its phase is a random
  offset plus a gentle linear ramp; the maps are normalised so ``sum_c |S_c|^2 = 1`` at every pixel, hence the
  root-sum-of-squares of noiseless coil images equals ``|x|``;
* k-space: ``y_c = F(S_c x) + n`` with ``F`` the centred orthonormal 2D FFT (fastmri's ``fft2c`` convention) and
  ``n`` white complex Gaussian noise, the same variance on every coil and sample.

SNR convention: ``snr_db = 10 log10(mean |y_clean|^2 / E|n|^2)`` over all k-space samples and coils; by Parseval this
equals the mean image power (background included) over the noise variance per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_AXES = (-2, -1)


def fft2c_np(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes (numpy twin of ``fastmri.fft2c``)."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=_AXES), axes=_AXES, norm="ortho"), axes=_AXES)


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D inverse FFT over the last two axes (numpy twin of ``fastmri.ifft2c``)."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=_AXES), axes=_AXES, norm="ortho"), axes=_AXES)


@dataclass(frozen=True)
class SimulatedScan:
    """Result of :func:`simulate_kspace`.

    Attributes:
        kspace: complex64 ``(C, H, W)`` multi-coil or ``(H, W)`` single-coil, noise included.
        sens: complex64 ``(C, H, W)`` coil maps, or ``None`` for single-coil.
        image: complex64 ``(H, W)`` ground-truth image (magnitude times the simulated phase).
        noise_std: Standard deviation of the complex noise per sample (``E|n|^2 = noise_std^2``); 0 without noise.

    """

    kspace: np.ndarray
    sens: np.ndarray | None
    image: np.ndarray
    noise_std: float


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    half = max(h, w) / 2.0
    yy = (np.arange(h) - h / 2.0 + 0.5) / half
    xx = (np.arange(w) - w / 2.0 + 0.5) / half
    return np.meshgrid(yy, xx, indexing="ij")


def smooth_phase(shape: tuple[int, int], rng: np.random.Generator, max_rad: float = np.pi / 2) -> np.ndarray:
    """Draw a smooth random phase map: a random 2nd-order polynomial in the image coordinates.

    Args:
        shape: ``(H, W)``.
        rng: Random generator.
        max_rad: Largest absolute phase; the map is scaled so its peak is in ``[max_rad / 2, max_rad]``.

    Returns:
        float32 ``(H, W)`` phase in radians.

    """
    yy, xx = _grid(shape)
    terms = [np.ones_like(xx), xx, yy, xx * yy, xx**2, yy**2]
    field = sum(c * t for c, t in zip(rng.standard_normal(len(terms)), terms, strict=True))
    peak = float(np.max(np.abs(field)))
    if peak == 0.0 or max_rad == 0.0:
        return np.zeros(shape, dtype=np.float32)
    return (field * (max_rad * rng.uniform(0.5, 1.0) / peak)).astype(np.float32)


def simulate_coil_maps(
    shape: tuple[int, int], n_coils: int, rng: np.random.Generator, support: np.ndarray | None = None
) -> np.ndarray:
    """Simulate birdcage-like coil sensitivity maps normalised to ``sum_c |S_c|^2 = 1``.

    Args:
        shape: ``(H, W)``.
        n_coils: Number of coils C >= 1 (1 gives a uniform map of ones).
        rng: Random generator (coil position jitter, loop size, phase).
        support: Optional bool ``(H, W)`` object mask; maps are set to 0 outside it (as ESPIRiT maps are).

    Returns:
        complex64 ``(C, H, W)``; ``sum_c |S_c|^2 = 1`` at every pixel (inside ``support`` when given).

    """
    if n_coils < 1:
        raise ValueError(f"n_coils must be >= 1, got {n_coils}")
    h, w = shape
    if n_coils == 1:
        maps = np.ones((1, h, w), dtype=np.complex128)
    else:
        yy, xx = _grid(shape)
        angles = 2 * np.pi * np.arange(n_coils) / n_coils + rng.uniform(-0.2, 0.2, n_coils) * np.pi / n_coils
        angles += rng.uniform(0, 2 * np.pi)
        radius = 1.3  # coils sit just outside the field of view (which spans [-1, 1])
        loop = rng.uniform(0.5, 0.8, n_coils)
        maps = np.empty((n_coils, h, w), dtype=np.complex128)
        for c in range(n_coils):
            cy, cx = radius * np.sin(angles[c]), radius * np.cos(angles[c])
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            magnitude = (d2 + loop[c] ** 2) ** -1.5
            ky, kx = rng.uniform(-np.pi / 4, np.pi / 4, 2)
            phase = rng.uniform(0, 2 * np.pi) + kx * xx + ky * yy
            maps[c] = magnitude * np.exp(1j * phase)
        maps /= np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
    if support is not None:
        if support.shape != (h, w):
            raise ValueError(f"support shape {support.shape} does not match {shape}")
        maps = maps * support.astype(bool)[None]
    return maps.astype(np.complex64)


def noise_std_for_snr(kspace: np.ndarray, snr_db: float) -> float:
    """Noise standard deviation (per complex sample) giving ``snr_db`` for this k-space (see module docstring)."""
    signal_power = float(np.mean(np.abs(kspace.astype(np.complex128)) ** 2))
    return float(np.sqrt(signal_power / 10.0 ** (snr_db / 10.0)))


def add_complex_noise(kspace: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white complex Gaussian noise at ``snr_db`` (mean signal power over noise variance).

    Args:
        kspace: Complex k-space of any shape (all coils share one noise level).
        snr_db: Target SNR in dB.
        rng: Random generator.

    Returns:
        Noisy k-space, same shape and dtype.

    """
    sigma = noise_std_for_snr(kspace, snr_db)
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    return (kspace + noise * (sigma / np.sqrt(2.0))).astype(kspace.dtype)


def simulate_kspace(
    image: np.ndarray,
    n_coils: int,
    rng: np.random.Generator,
    snr_db: float | None = None,
    max_phase_rad: float = np.pi / 2,
) -> SimulatedScan:
    """Simulate fully sampled k-space from an image.

    Args:
        image: ``(H, W)`` real magnitude image (a smooth random phase is added) or complex image (used as is).
        n_coils: 0 or 1 for single-coil k-space ``(H, W)``; C > 1 for multi-coil ``(C, H, W)``.
        rng: Random generator (phase, coil maps, noise).
        snr_db: SNR of the added noise in dB, or ``None`` for noiseless k-space.
        max_phase_rad: Peak of the random phase for a real input.

    Returns:
        A :class:`SimulatedScan`.

    Raises:
        ValueError: If the image is not 2D and finite, or ``n_coils`` is negative.

    """
    img = np.asarray(image)
    if img.ndim != 2 or not np.all(np.isfinite(img)):
        raise ValueError(f"image must be a finite 2D array, got shape {img.shape}")
    if n_coils < 0:
        raise ValueError(f"n_coils must be >= 0, got {n_coils}")
    shape = (int(img.shape[0]), int(img.shape[1]))
    if np.iscomplexobj(img):
        x = img.astype(np.complex128)
    else:
        x = img.astype(np.float64) * np.exp(1j * smooth_phase(shape, rng, max_phase_rad).astype(np.float64))
    sens = None
    if n_coils > 1:
        sens = simulate_coil_maps(shape, n_coils, rng)
        kspace = fft2c_np(sens.astype(np.complex128) * x[None])
    else:
        kspace = fft2c_np(x)
    noise_std = 0.0
    if snr_db is not None:
        noise_std = noise_std_for_snr(kspace, snr_db)
        kspace = add_complex_noise(kspace, snr_db, rng)
    return SimulatedScan(
        kspace=kspace.astype(np.complex64), sens=sens, image=x.astype(np.complex64), noise_std=noise_std
    )

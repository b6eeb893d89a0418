"""Shared synthetic data for the physics tests: a phantom with smooth phase and smooth coil maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize


def make_phantom(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Complex phantom (n, n) complex64 with a smooth phase, and its support (n, n) bool."""
    mag = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True).astype(np.float32)
    yy, xx = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    phase = 0.8 * xx + 0.5 * yy**2 - 0.3 * xx * yy
    img = mag * np.exp(1j * phase)
    return torch.from_numpy(img.astype(np.complex64)), torch.from_numpy(mag > 0.05)


def make_coil_maps(n: int, num_coils: int) -> torch.Tensor:
    """Smooth Gaussian-blob coil maps (C, n, n) complex64 with smooth phase, sum |S|^2 = 1 everywhere."""
    yy, xx = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    maps = []
    for c in range(num_coils):
        angle = 2 * np.pi * c / num_coils
        cy, cx = 1.2 * np.sin(angle), 1.2 * np.cos(angle)
        mag = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.8**2))
        phase = 0.6 * np.cos(angle) * yy + 0.6 * np.sin(angle) * xx + c
        maps.append(mag * np.exp(1j * phase))
    s = np.stack(maps)
    s /= np.sqrt((np.abs(s) ** 2).sum(axis=0, keepdims=True))
    return torch.from_numpy(s.astype(np.complex64))


def random_complex(*shape: int, seed: int = 0, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


@pytest.fixture(scope="session")
def phantom128() -> tuple[torch.Tensor, torch.Tensor]:
    return make_phantom(128)


@pytest.fixture(scope="session")
def coils8_128() -> torch.Tensor:
    return make_coil_maps(128, 8)

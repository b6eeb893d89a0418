from __future__ import annotations

import fastmri
import numpy as np
import pytest
import torch
from conftest import random_complex

from mridiff.physics import fft2c, ifft2c


def _numpy_fft2c(x: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)


@pytest.mark.parametrize("shape", [(64, 48), (2, 3, 33, 35), (1, 65, 64)])
def test_fft2c_matches_fastmri_and_numpy(shape: tuple[int, ...]) -> None:
    x = random_complex(*shape)
    k = fft2c(x)
    assert k.dtype == torch.complex64 and k.shape == x.shape
    ref_fastmri = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x)))
    torch.testing.assert_close(k, ref_fastmri)
    np.testing.assert_allclose(k.numpy(), _numpy_fft2c(x.numpy()), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 48), (2, 33, 35)])
def test_ifft2c_matches_fastmri_and_numpy(shape: tuple[int, ...]) -> None:
    k = random_complex(*shape, seed=1)
    x = ifft2c(k)
    ref_fastmri = torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(k)))
    torch.testing.assert_close(x, ref_fastmri)
    axes = (-2, -1)
    ref_np = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k.numpy(), axes=axes), norm="ortho"), axes=axes)
    np.testing.assert_allclose(x.numpy(), ref_np, rtol=1e-4, atol=1e-5)


def test_roundtrip_orthonormal_and_inputs_untouched() -> None:
    x = random_complex(3, 64, 64, seed=2)
    before = x.clone()
    k = fft2c(x)
    torch.testing.assert_close(ifft2c(k), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fft2c(ifft2c(x)), x, rtol=1e-5, atol=1e-5)
    # Orthonormal: energy is preserved (Parseval).
    torch.testing.assert_close(k.abs().pow(2).sum(), x.abs().pow(2).sum(), rtol=1e-5, atol=0)
    assert torch.equal(x, before)


def test_dc_at_centre_and_noncontiguous_and_real_input() -> None:
    ones = torch.ones(8, 6, dtype=torch.complex64)
    k = fft2c(ones)
    assert torch.argmax(k.abs()).item() == 4 * 6 + 3
    x = random_complex(16, 16, seed=3)
    torch.testing.assert_close(fft2c(x.T), fft2c(x.T.contiguous()))
    real = torch.rand(16, 16, dtype=torch.float64)
    kr = fft2c(real)
    assert kr.dtype == torch.complex128
    torch.testing.assert_close(kr, fft2c(real.to(torch.complex128)))

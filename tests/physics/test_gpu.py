"""The physics on a CUDA device: results match the CPU and stay on the device. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from conftest import make_coil_maps, make_phantom, random_complex

from mridiff.physics import (
    Hard,
    KspaceCrop,
    MaskSpec,
    MultiCoil,
    SingleCoil,
    espirit_maps,
    estimate_noise_std,
    fft2c,
    lowres_maps,
    make_mask,
    sense_combine,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


def test_fft_matches_cpu() -> None:
    x = random_complex(2, 64, 48)
    torch.testing.assert_close(fft2c(x.to(CUDA)).cpu(), fft2c(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["single", "multi", "crop"])
def test_operators_on_cuda_with_cpu_built_state(kind: str) -> None:
    mask = make_mask(MaskSpec("random", 4), (64, 64), seed=0)  # built on the CPU, used on the GPU
    scale = torch.tensor([2.0, 0.5])
    if kind == "single":
        op = SingleCoil(mask, scale=scale)
    elif kind == "multi":
        op = MultiCoil(mask, random_complex(2, 4, 64, 64, seed=1), scale=scale)
    else:
        op = KspaceCrop(2, (64, 64), scale=scale)
    x = random_complex(2, 64, 64, seed=2)
    y_cpu = op.forward(x)
    y_gpu = op.forward(x.to(CUDA))
    assert y_gpu.device.type == "cuda"
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(op.adjoint(y_gpu).cpu(), op.adjoint(y_cpu), rtol=1e-4, atol=1e-4)
    x0 = random_complex(2, 64, 64, seed=3)
    out_cpu = Hard(iters=5)(op, x0, y_cpu, prior_var=1.0)
    out_gpu = Hard(iters=5)(op.to(CUDA), x0.to(CUDA), y_gpu, prior_var=1.0)
    assert out_gpu.device.type == "cuda"
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-3, atol=1e-3)


def test_coils_and_noise_on_cuda() -> None:
    img, support = make_phantom(128)
    maps_true = make_coil_maps(128, 8)
    coil_images = (maps_true * img).to(CUDA)
    mask = make_mask(MaskSpec("random", 4, 24 / 128), (128, 128), seed=0)
    kspace = fft2c(coil_images) * mask.to(CUDA)
    maps = espirit_maps(kspace, mask)
    assert maps.device.type == "cuda" and maps.dtype == torch.complex64
    combined = sense_combine(coil_images, maps).abs().cpu()
    nmse = ((combined - img.abs())[support] ** 2).sum() / (img.abs()[support] ** 2).sum()
    assert float(nmse) < 0.01
    assert lowres_maps(kspace, mask.to(CUDA)).device.type == "cuda"
    sigma = estimate_noise_std(kspace + 0.01 * mask.to(CUDA) * random_complex(8, 128, 128).to(CUDA), mask)
    assert sigma > 0

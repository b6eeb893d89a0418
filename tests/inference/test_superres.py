"""Super-resolution API: grid convention, baselines, operators and data consistency of the sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.transform import resize

from mridiff.inference.superres import (
    AreaDownsample,
    SuperResolver,
    bicubic_upsample,
    hr_affine,
    hr_offset,
    simulate_lowres,
    sinc_upsample,
)
from mridiff.models.unet import ConditionalUNet, UNetConfig
from mridiff.physics.fft import fft2c
from mridiff.physics.operators import KspaceCrop
from mridiff.training.checkpoint import export_model


def export_tiny(task: str, path: Path, size: int) -> Path:
    """An untrained tiny U-Net exported like a trained one (plumbing only)."""
    torch.manual_seed(0)
    state, cond = (1, 0) if task == "augment" else (2, 2)
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4,
                     cond_channels=cond, state_channels=state)
    meta = {"task": task, "model": cfg.to_dict(),
            "diffusion": {"timesteps": 1000, "schedule": "linear", "prediction": "epsilon"},
            "normalisation": {"method": "percentile", "q": 99.0}, "masks": {"sr_scales": [2, 4]},
            "training": {"image_size": [size, size]}}
    return export_model(ConditionalUNet(cfg), meta, path)


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> SuperResolver:
    return SuperResolver(export_tiny("sr", tmp_path_factory.mktemp("sr") / "sr.safetensors", 32), device="cpu")


def smooth_lowres(n: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Complex LR images (batch, n, n) with smooth structure and a random phase ramp."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    imgs = [np.cos(2 * np.pi * (a * xx + b * yy)) + 1.5 + 1j * c * xx for a, b, c in rng.uniform(0.5, 2.0, (batch, 3))]
    return torch.from_numpy(np.stack(imgs).astype(np.complex64))


@pytest.mark.parametrize("n", [7, 8, 9, 16])
@pytest.mark.parametrize("scale", [2, 4])
def test_sinc_upsample_reproduces_lr_samples_at_the_documented_offset(n: int, scale: int) -> None:
    lr = torch.randn(1, n, n, dtype=torch.complex64, generator=torch.Generator().manual_seed(n))
    hr = sinc_upsample(lr, scale, "kspace")
    off = int(hr_offset(n, scale, "kspace"))
    assert off == (0 if n % 2 == 0 else scale // 2)
    assert torch.allclose(hr[:, off::scale, off::scale], lr, atol=1e-5)


@pytest.mark.parametrize("lr_model", ["kspace", "image"])
@pytest.mark.parametrize("n", [9, 10])
def test_hr_affine_keeps_world_coordinates_of_matching_voxels(lr_model: str, n: int) -> None:
    rng = np.random.default_rng(1)
    lr_affine = np.eye(4)
    lr_affine[:3, :3] = rng.normal(size=(3, 3))
    lr_affine[:3, 3] = rng.normal(size=3) * 50
    lr_shape, axes, scale = (n, 5, n + 3), (0, 2), 4
    aff = hr_affine(lr_affine, lr_shape, axes, scale, lr_model)
    for i, j, k in rng.integers(0, 5, size=(5, 3)):
        hr_index = np.array([scale * i + hr_offset(n, scale, lr_model), j,
                             scale * k + hr_offset(n + 3, scale, lr_model), 1.0])
        assert np.allclose(aff @ hr_index, lr_affine @ np.array([i, j, k, 1.0]))
    # voxel sizes: divided by the scale in-plane, unchanged through-plane
    zooms = np.linalg.norm(aff[:3, :3], axis=0) / np.linalg.norm(lr_affine[:3, :3], axis=0)
    assert np.allclose(zooms, [1 / scale, 1.0, 1 / scale])


def test_bicubic_is_skimage_resize_on_the_block_grid_and_interpolates_on_the_fft_grid() -> None:
    lr = np.random.default_rng(2).random((3, 10, 12)).astype(np.float32)
    for scale in (2, 4):
        ref = resize(lr[1], (10 * scale, 12 * scale), order=3, anti_aliasing=False)
        assert np.allclose(bicubic_upsample(lr, scale, "image")[1], ref, atol=1e-5)
        # on the FFT grid (even n: offset 0) an interpolating spline passes through the LR samples
        assert np.allclose(bicubic_upsample(lr, scale, "kspace")[:, ::scale, ::scale], lr, atol=1e-5)


def test_sinc_on_block_grid_lines_up_with_bicubic_on_block_grid() -> None:
    yy, xx = np.mgrid[0:16, 0:16] * (2 * np.pi / 16)
    lr = torch.from_numpy(2 + np.cos(2 * xx + yy) + np.sin(3 * yy)).float()[None]  # periodic: sinc is exact
    cubic = bicubic_upsample(lr.numpy(), 2, "image")
    on_grid = np.abs(sinc_upsample(lr.to(torch.complex64), 2, "image").abs().numpy() - cubic).mean()
    off_grid = np.abs(sinc_upsample(lr.to(torch.complex64), 2, "kspace").abs().numpy() - cubic).mean()
    assert on_grid < 0.3 * off_grid  # the half-voxel shift is what separates the two grids


def test_area_operator_adjoint_and_projection() -> None:
    gen = torch.Generator().manual_seed(3)
    op = AreaDownsample(2, (8, 12))
    x = torch.randn(2, 8, 12, dtype=torch.complex64, generator=gen)
    y = torch.randn(2, 4, 6, dtype=torch.complex64, generator=gen)
    lhs = torch.vdot(op.forward(x).flatten(), y.flatten())
    assert torch.allclose(lhs, torch.vdot(x.flatten(), op.adjoint(y).flatten()), atol=1e-4)
    p = op.project(x, y)
    assert torch.allclose(op.forward(p), y, atol=1e-5)
    assert torch.allclose(op.project(p, y), p, atol=1e-5)


def test_simulate_lowres_checks_the_scale() -> None:
    hr = torch.ones(1, 18, 20, dtype=torch.complex64)
    with pytest.raises(ValueError, match="does not divide"):
        simulate_lowres(hr, 4)
    with pytest.raises(ValueError, match="not supported"):
        simulate_lowres(hr, 3)
    assert simulate_lowres(hr, 2, "image").shape == (1, 9, 10)
    # k-space model keeps intensity: a constant image stays constant at low resolution
    assert torch.allclose(simulate_lowres(hr, 2, "kspace").abs(), torch.ones(1, 9, 10), atol=1e-5)


@pytest.mark.parametrize("n", [16, 15])
def test_kspace_sampling_keeps_measured_central_kspace_exactly(resolver: SuperResolver, n: int) -> None:
    lr = 40.0 * smooth_lowres(n)
    scale = 2
    out = resolver.sample(lr, scale, lr_model="kspace", steps=3, samples=2, seed=0)
    assert out.shape == (2, 2, scale * n, scale * n)
    x = out.reshape(-1, scale * n, scale * n)
    y = scale * fft2c(lr).repeat_interleave(2, 0)
    k = KspaceCrop(scale, (scale * n, scale * n)).forward(x)
    assert torch.allclose(k, y, rtol=1e-4, atol=1e-5 * float(fft2c(x).abs().max()))
    # ...and the network filled in the rest: outside the centre the samples differ from zero-padding
    outside = fft2c(x) - fft2c(sinc_upsample(lr, scale).repeat_interleave(2, 0))
    assert float(outside.abs().max()) > 1e-2 * float(y.abs().max())


def test_image_sampling_keeps_block_means(resolver: SuperResolver) -> None:
    lr = 40.0 * smooth_lowres(16)
    out = resolver.sample(lr, 2, lr_model="image", steps=3, seed=0)[:, 0]
    assert torch.allclose(AreaDownsample(2, (32, 32)).forward(out), lr, atol=1e-4 * float(out.abs().max()))


def test_superresolve_volume_std_and_empty_slices(resolver: SuperResolver) -> None:
    lr = np.concatenate([np.abs(smooth_lowres(16).numpy()), np.zeros((1, 16, 16), np.float32)])
    res = resolver.superresolve(lr, 2, steps=2, samples=2, seed=0, batch_size=2)
    assert res.mean.shape == res.std.shape == res.sinc.shape == (3, 32, 32)
    assert res.nfe == 2
    assert float(res.std[0].mean()) > 0
    assert not res.mean[2].any() and not res.std[2].any()  # nothing measured, nothing invented
    again = resolver.superresolve(lr, 2, steps=2, samples=2, seed=0, batch_size=2)
    assert np.array_equal(res.mean, again.mean)
    with pytest.raises(ValueError, match="not supported"):
        resolver.superresolve(lr, 3)

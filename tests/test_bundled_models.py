"""Every bundled model loads safely (safetensors, checksum) and runs a 5-step sampling at its native size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mridiff.inference.model import DEFAULT_MODELS, default_model_path, load_model
from mridiff.training.checkpoint import sha256_file


@pytest.mark.parametrize("task", sorted(DEFAULT_MODELS))
def test_bundled_model_loads_with_matching_checksum(task: str) -> None:
    path = default_model_path(task)
    assert path.is_file(), f"bundled {task} model missing"
    assert path.stat().st_size < 15 * 2**20
    model = load_model(None, task, "cpu")
    assert model.meta["sha256"] == sha256_file(path)
    assert path.with_suffix(".sha256").read_text().split()[0] == model.meta["sha256"]


def test_bundled_models_fit_the_size_budget() -> None:
    total = sum(default_model_path(t).stat().st_size for t in DEFAULT_MODELS)
    assert total < 40 * 2**20


def test_bundled_recon_runs_5_steps() -> None:
    from mridiff import Reconstructor

    rec = Reconstructor(device="cpu")
    h, w = rec.model.meta["training"]["image_size"]  # its native size (256x256 for the real-data prior)
    rng = np.random.default_rng(0)
    image = np.zeros((h, w), np.complex64)
    block = image[h // 4:3 * h // 4, w // 3:2 * w // 3]
    block[:] = 1.0 + 0.2 * rng.standard_normal(block.shape)
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image), norm="ortho"))[None].astype(np.complex64)
    mask = np.zeros((h, w), np.float32)
    mask[:, ::4] = 1
    mask[:, w // 2 - w // 25:w // 2 + w // 25] = 1
    out = rec.reconstruct(kspace, mask, steps=5, samples=2)
    assert out.mean.shape == (1, h, w) and np.isfinite(out.mean).all() and out.std.max() > 0


def test_bundled_sr_runs_5_steps() -> None:
    from mridiff.inference.superres import SuperResolver

    lr = torch.rand(1, 64, 64).numpy()
    out = SuperResolver(device="cpu").superresolve(lr, 2, steps=5)
    assert np.isfinite(np.asarray(out.mean)).all() and np.asarray(out.mean).shape[-2:] == (128, 128)


def test_bundled_augment_runs_5_steps() -> None:
    from mridiff.inference.generate import SampleGenerator

    out = SampleGenerator(device="cpu").generate([0, 1], steps=5)
    assert out.shape[0] == 2 and out.shape[-2:] == (128, 128) and np.isfinite(out).all()

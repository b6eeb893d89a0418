"""The sampling pipeline: results do not depend on the batch size or on out-of-memory halving (bit-identical on
the CPU), for reconstruction, super-resolution and augmentation alike; progress counts network calls."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import mridiff.inference.pipeline as pipeline_module
from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.inference.generate import SampleGenerator, sample_seed
from mridiff.inference.options import SamplingOptions
from mridiff.inference.reconstruct import Reconstructor
from mridiff.inference.superres import SuperResolver
from mridiff.models.unet import ConditionalUNet, UNetConfig
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.training.checkpoint import export_model
from tests.helpers import TINY, tiny_meta

T_SHORT = 20  # a short schedule, so that DDPM (all T steps, fresh noise in each) stays cheap


def _export(tmp: Path, task: str, cfg: UNetConfig = TINY) -> Path:
    torch.manual_seed(0)
    meta: dict[str, Any] = {**tiny_meta(task, cfg), "masks": {"sr_scales": [2]},
                            "diffusion": {"timesteps": T_SHORT, "schedule": "linear", "prediction": "epsilon"}}
    return export_model(ConditionalUNet(cfg), meta, tmp / f"{task}.safetensors")


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Reconstructor:
    return Reconstructor(_export(tmp_path_factory.mktemp("rec"), "recon"), device="cpu")


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> SuperResolver:
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4)
    return SuperResolver(_export(tmp_path_factory.mktemp("sr"), "sr", cfg), device="cpu")


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> SampleGenerator:
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4,
                     cond_channels=0, state_channels=1)
    return SampleGenerator(_export(tmp_path_factory.mktemp("aug"), "augment", cfg), device="cpu")


def _oom_once(monkeypatch: pytest.MonkeyPatch, calls: list[int]) -> None:
    """The first chunk of more than one slice's samples raises CUDA out-of-memory, as a full GPU would."""
    real = pipeline_module.reverse_diffusion

    def run(*args: Any, **kwargs: Any) -> torch.Tensor:
        x_init = args[5]
        calls.append(int(x_init.shape[0]))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "reverse_diffusion", run)


def _invariant(run: Callable[[int], np.ndarray], monkeypatch: pytest.MonkeyPatch, samples: int) -> None:
    """``run(batch_size)`` gives bit-identical results for batch sizes 1, 2, 3, and with an OOM halving 3 -> 1."""
    reference = run(1)
    for batch in (2, 3):
        np.testing.assert_array_equal(run(batch), reference, err_msg=f"batch size {batch}")
    calls: list[int] = []
    _oom_once(monkeypatch, calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        halved = run(3)
    assert calls[:2] == [3 * samples, 1 * samples]
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        "GPU out of memory; retrying with a batch of 1 slices"]
    np.testing.assert_array_equal(halved, reference)


@pytest.mark.parametrize(("sampler", "dc"), [("ddpm", "soft"), ("ddim", "hard")])
def test_reconstruction_does_not_depend_on_batching(rec: Reconstructor, tiny_dataset: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch, sampler: str, dc: str) -> None:
    info = open_scan(next(tiny_dataset["singlecoil"].glob("*.h5")))
    kspace = np.stack([read_slice(info, i).kspace for i in range(info.num_slices)])
    mask = make_mask(MaskSpec("random", 4, 0.2), kspace.shape[-2:], 0)

    def run(batch: int) -> np.ndarray:
        out = rec.reconstruct(kspace, mask, sampler=sampler, steps=None if sampler == "ddpm" else 3, dc=dc,
                              samples=2, seed=4, batch_size=batch)
        return np.stack([out.mean, out.std])

    assert info.num_slices >= 5  # every slice is compared, across several chunk boundaries
    _invariant(run, monkeypatch, samples=2)


def test_multicoil_reconstruction_does_not_depend_on_batching(rec: Reconstructor, tiny_dataset: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    info = open_scan(next(tiny_dataset["multicoil"].glob("*.h5")))
    kspace = np.stack([read_slice(info, i).kspace for i in range(info.num_slices)])
    mask = make_mask(MaskSpec("random", 4, 0.2), kspace.shape[-2:], 0)

    def run(batch: int) -> np.ndarray:
        return rec.reconstruct(kspace, mask, multicoil=True, sampler="ddpm", dc="cg", seed=1, batch_size=batch,
                               sens_method="lowres").mean

    _invariant(run, monkeypatch, samples=1)


def test_superresolution_does_not_depend_on_batching(resolver: SuperResolver, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    lr = rng.uniform(0.5, 2.0, (5, 16, 16)).astype(np.float32)

    def run(batch: int) -> np.ndarray:
        out = resolver.superresolve(lr, 2, sampler="ddpm", samples=2, seed=2, batch_size=batch)
        return np.stack([out.mean, out.std])

    _invariant(run, monkeypatch, samples=2)


def test_augmentation_does_not_depend_on_batching(generator: SampleGenerator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = [sample_seed(3, i) for i in range(5)]
    _invariant(lambda batch: generator.generate(seeds, steps=4, batch_size=batch), monkeypatch, samples=1)


def test_progress_counts_network_calls_and_steps_with_ddpm_are_refused(rec: Reconstructor,
                                                                       tiny_dataset: dict[str, Path]) -> None:
    info = open_scan(next(tiny_dataset["singlecoil"].glob("*.h5")))
    kspace = np.stack([read_slice(info, i).kspace for i in range(5)])
    mask = make_mask(MaskSpec("random", 4, 0.2), kspace.shape[-2:], 0)
    ticks: list[int] = []
    real = pipeline_module.tqdm

    def recording(*args: Any, **kwargs: Any) -> Any:
        bar = real(*args, **kwargs)
        ticks.append(int(bar.total))
        return bar

    pipeline = pipeline_module.Pipeline(rec.model, SamplingOptions(steps=3, batch_size=2, progress=True))
    pipeline_module.tqdm = recording  # type: ignore[assignment]
    try:
        rec.reconstruct(kspace, mask, steps=3, batch_size=2, progress=True)
    finally:
        pipeline_module.tqdm = real  # type: ignore[assignment]
    assert pipeline.nfe == 3 and ticks == [3 * 3]  # 3 calls per chunk, chunks of 2, 2 and 1 slices
    with pytest.raises(ValueError, match=f"all {T_SHORT} steps"):
        rec.reconstruct(kspace, mask, sampler="ddpm", steps=5)
    with pytest.raises(ValueError, match="choose one of"):
        SamplingOptions(dc="exact")  # type: ignore[arg-type]


def test_bf16_precision_runs_the_network_in_bf16_and_stays_close_to_fp32(tmp_path: Path) -> None:
    rec = Reconstructor(_export(tmp_path, "recon"), device="cpu")
    with torch.no_grad():  # MONAI zero-initialises the output layer: give the untrained network an output
        for param in rec.model.net.parameters():
            if not param.abs().any():
                param.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(7)
    kspace = (rng.standard_normal((2, 32, 32)) + 1j * rng.standard_normal((2, 32, 32))).astype(np.complex64)
    mask = make_mask(MaskSpec("random", 4), (32, 32), seed=0)
    seen: list[torch.dtype] = []
    hook = rec.model.net.unet.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        fp32 = rec.reconstruct(kspace, mask, steps=3, seed=1, precision="fp32").mean
        assert set(seen) == {torch.float32}
        seen.clear()
        bf16 = rec.reconstruct(kspace, mask, steps=3, seed=1, precision="bf16").mean
        assert set(seen) == {torch.bfloat16}
    finally:
        hook.remove()
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    rel = np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32)
    assert rel < 0.05, rel  # bf16 keeps 8 bits of mantissa; the data-consistent output barely moves
    with pytest.raises(ValueError, match="precision"):
        SamplingOptions(precision="fp8")

"""Issue 6.6: GPU out-of-memory falls back to smaller batches with a warning; slices are streamed."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bad_inputs as bi
import numpy as np
import pytest
import torch

import mridiff.inference.pipeline as pipeline_module
from mridiff.data import fastmri_h5
from mridiff.inference.reconstruct import Reconstructor


def _oom_above(limit: int, calls: list[int]) -> Callable[..., Any]:
    """A reverse loop that raises CUDA OOM whenever its batch holds more than ``limit`` images (a GPU's limit;
    on the CPU the network itself is called one image at a time)."""
    real = pipeline_module.reverse_diffusion

    def run(*args: Any, **kwargs: Any) -> Any:
        x_init = args[5]
        calls.append(int(x_init.shape[0]))
        if x_init.shape[0] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    return run


@pytest.fixture
def problem() -> tuple[np.ndarray, np.ndarray]:
    """Four 32x32 slices of k-space and a 4x column mask."""
    k = bi.good_kspace(slices=4)
    mask = np.zeros((bi.SIZE, bi.SIZE), np.float32)
    mask[:, ::4] = 1
    mask[:, 14:18] = 1
    return k, mask


def test_oom_halves_the_batch_with_a_warning_and_gives_the_same_result(
        assets: bi.Assets, problem: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    k, mask = problem
    rec = Reconstructor(assets.model, device="cpu")
    reference = rec.reconstruct(k, mask, steps=2, batch_size=1, seed=3)

    calls: list[int] = []
    monkeypatch.setattr(pipeline_module, "reverse_diffusion", _oom_above(1, calls))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = rec.reconstruct(k, mask, steps=2, batch_size=4, seed=3)

    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert messages == ["GPU out of memory; retrying with a batch of 2 slices",
                        "GPU out of memory; retrying with a batch of 1 slices"]
    assert calls[:2] == [4, 2] and set(calls[2:]) == {1}
    np.testing.assert_array_equal(result.mean, reference.mean)  # per-slice noise streams: bit-identical


def test_oom_even_for_one_slice_is_raised_not_looped(assets: bi.Assets, problem: tuple[np.ndarray, np.ndarray],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    k, mask = problem
    rec = Reconstructor(assets.model, device="cpu")
    calls: list[int] = []
    monkeypatch.setattr(pipeline_module, "reverse_diffusion", _oom_above(0, calls))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(torch.cuda.OutOfMemoryError):
            rec.reconstruct(k, mask, steps=2, batch_size=4, seed=0)
    assert calls == [4, 2, 1]


def test_cli_survives_oom_and_says_so(tmp_path: Path, assets: bi.Assets, run_recon: Callable[..., bi.Outcome],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    scan = bi.write_good_scan(tmp_path / "scan.h5", slices=4)
    monkeypatch.setattr(pipeline_module, "reverse_diffusion", _oom_above(2, []))
    outcome = run_recon([scan], tmp_path / "out", "--batch-size", "4")
    assert outcome.exit_code == 0, outcome.stderr
    assert "mridiff: warning: GPU out of memory; retrying with a batch of 2 slices" in outcome.stderr.splitlines()
    assert (tmp_path / "out" / "reconstructions" / "scan.h5").is_file()


def test_reconstruct_streams_one_slice_per_read(tmp_path: Path, run_recon: Callable[..., bi.Outcome],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The k-space volume is never read whole: every read of the dataset is one integer slice index."""
    scan = bi.write_good_scan(tmp_path / "scan.h5", slices=5)
    reads: list[tuple[str, Any, tuple[int, ...]]] = []
    real = fastmri_h5._read

    def recording(path: Path, dataset: Any, index: int) -> np.ndarray:
        arr = real(path, dataset, index)
        reads.append((dataset.name, index, arr.shape))
        return arr

    monkeypatch.setattr(fastmri_h5, "_read", recording)
    assert run_recon([scan], tmp_path / "out", "--batch-size", "2").exit_code == 0
    kspace_reads = [(i, s) for name, i, s in reads if name == "/kspace"]
    assert kspace_reads and all(isinstance(i, int) and s == (bi.SIZE, bi.SIZE) for i, s in kspace_reads)
    assert sorted({i for i, _ in kspace_reads}) == list(range(5))

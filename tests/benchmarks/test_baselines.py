"""The baselines of benchmarks/quality.py: sigpy CS shares mridiff's FFT and coil conventions, and fastMRI's
U-Net trains, saves and reloads through safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from benchmarks.bart import bart_available, bart_pics, read_cfl, write_cfl
from benchmarks.quality import Case, by_number, cs_recon, evenly_spaced, tune_lambda
from benchmarks.unet_baseline import load_unet, train_unet, unet_reconstruct
from mridiff.metrics import psnr
from mridiff.tasks.recon import build_problem

pytestmark = pytest.mark.filterwarnings("ignore:only .* calibration lines")


@pytest.mark.parametrize("variant", ["singlecoil", "multicoil"])
def test_cs_beats_zero_filled(tiny_dataset: dict[str, Path], variant: str) -> None:
    # A wrong FFT centring or coil convention between sigpy and mridiff would make CS far worse than zero-filled.
    path = sorted(tiny_dataset[variant].glob("*.h5"))[0]
    case = Case(path, [2, 3], 4, seed=0)
    if case.multicoil:  # the simulation's own coil maps: estimated ones from 2 ACS lines of a 32x32 grid are poor
        with h5py.File(path, "r") as fh:
            case.sens = torch.from_numpy(fh["sens_maps"][2:4]).to(torch.complex64)
        case.problem = build_problem(case.kspace, case.mask, case.sens)
    zf = np.abs(case.problem.cond.numpy()) * case.problem.scale.numpy()[:, None, None]
    for method in ("l1wavelet", "tv"):
        pred = cs_recon(case, method, 1e-2)
        assert pred.shape == case.gt.shape
        assert psnr(case.gt, pred) > psnr(case.gt, zf) + 0.5


def test_lambda_tuning_picks_the_best_validation_score(tiny_dataset: dict[str, Path]) -> None:
    path = sorted(tiny_dataset["singlecoil"].glob("*.h5"))[1]
    lam, scores = tune_lambda([Case(path, [3], 4, seed=1)], "tv", [1e-4, 1e-1, 10.0])
    assert lam == max(scores, key=lambda s: s["val_PSNR"])["lambda"]
    assert scores[-1]["val_PSNR"] < max(s["val_PSNR"] for s in scores)  # a huge weight over-smooths


def test_unet_baseline_trains_and_reloads(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"task: recon\ndata:\n  root: {tiny_dataset['singlecoil']}\nmasks:\n  accelerations: [4]\n"
                   "  kinds: [random]\n")
    stem = tmp_path / "unet"
    info = train_unet(str(cfg), 0.05, stem, chans=4, pools=2, batch=2, lr=1e-3, seed=0)
    assert info["steps"] >= 1
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["chans"] == 4 and meta["num_pool_layers"] == 2
    model = load_unet(stem.with_suffix(".safetensors"))
    cond = torch.randn(2, 32, 32, dtype=torch.complex64)
    out = unet_reconstruct(model, cond)
    assert out.shape == (2, 32, 32) and torch.isfinite(out).all() and (out >= 0).all()


def test_unet_baseline_resumes_on_cpu_time(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"task: recon\ndata:\n  root: {tiny_dataset['singlecoil']}\nmasks:\n  accelerations: [4]\n"
                   "  kinds: [random]\n")
    stem = tmp_path / "unet"
    first = train_unet(str(cfg), 0.02, stem, chans=4, pools=2, batch=2, lr=1e-3, seed=0, ckpt_every=1)
    with pytest.raises(SystemExit, match="pass --resume"):
        train_unet(str(cfg), 0.02, stem, chans=4, pools=2, batch=2, lr=1e-3, seed=0)
    second = train_unet(str(cfg), 0.04, stem, chans=4, pools=2, batch=2, lr=1e-3, seed=0, resume=True)
    assert second["steps"] > first["steps"] and second["train_seconds"] >= 0.04 * 60
    state = torch.load(stem.with_name("unet_state.pt"), weights_only=True)
    assert state["step"] == second["steps"]


@pytest.mark.skipif(not bart_available(), reason="bart (Debian package) not installed")
def test_bart_pics_matches_fastmri_conventions() -> None:
    from mridiff.data.simulate import simulate_kspace
    from tests.helpers import head_volume

    img = head_volume((32, 32, 3), 0)[:, :, 1]
    img = img / img.max()
    single = simulate_kspace(img, 1, np.random.default_rng(0))
    np.testing.assert_allclose(bart_pics(single.kspace, None, 1e-6, 30), single.image, atol=1e-4)
    multi = simulate_kspace(img, 4, np.random.default_rng(1))
    np.testing.assert_allclose(np.abs(bart_pics(multi.kspace, multi.sens, 1e-6, 30)), img, atol=1e-4)


def test_cfl_round_trip(tmp_path: Path) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) + 1j).astype(np.complex64)
    write_cfl(tmp_path / "a", arr)
    np.testing.assert_array_equal(read_cfl(tmp_path / "a"), arr)
    assert (tmp_path / "a.hdr").read_text().splitlines()[1].split()[:4] == ["2", "3", "4", "1"]


def test_real_test_slices_are_spread_over_the_numbers(tmp_path: Path) -> None:
    files = sorted([tmp_path / f"meningioma_{i}.h5" for i in (1, 2, 10, 100, 3, 20)], key=by_number)
    assert [f.name for f in files][:3] == ["meningioma_1.h5", "meningioma_2.h5", "meningioma_3.h5"]
    picks = evenly_spaced(files, 3)
    assert [p.name for p in picks] == ["meningioma_1.h5", "meningioma_3.h5", "meningioma_100.h5"]
    assert evenly_spaced(files, 10) == files

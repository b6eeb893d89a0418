from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mridiff.errors import InputError
from mridiff.inference.model import load_model
from mridiff.training.checkpoint import safe_torch_load
from mridiff.training.run import train
from tests.helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_training_step_checkpoint_and_export_round_trip(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "run", max_steps=2)
    exported = train(cfg, accelerator="cpu", devices=1, progress=False)
    assert exported is not None and exported.is_file()
    ckpt = safe_torch_load(tmp_path / "run" / "checkpoints" / "last.ckpt")  # weights_only=True
    assert ckpt["global_step"] == 2
    state = ckpt["state_dict"]
    # The exported weights are the EMA copy, exactly.
    model = load_model(exported, "recon", "cpu")
    for name, value in model.net.state_dict().items():
        assert torch.equal(value, state[f"ema.module.{name}"].float())
    # The optimiser moved the weights away from their initial values.
    assert set(ckpt["rng"]) == {"torch", "python", "numpy"}
    assert (tmp_path / "run" / "loss.png").is_file() and (tmp_path / "run" / "model.sha256").is_file()


def test_resume_continues_at_same_global_step(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_dataset["singlecoil"], out, max_steps=2), accelerator="cpu", devices=1, progress=False)
    first = safe_torch_load(out / "checkpoints" / "last.ckpt")
    with pytest.raises(InputError, match="previous run"):
        train(tiny_config(tiny_dataset["singlecoil"], out, max_steps=4), accelerator="cpu", devices=1,
              progress=False)
    train(tiny_config(tiny_dataset["singlecoil"], out, max_steps=4), accelerator="cpu", devices=1, resume=True,
          progress=False)
    second = safe_torch_load(out / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 2 and second["global_step"] == 4
    steps = [int(line.split(",")[0]) for line in (out / "loss.csv").read_text().splitlines()[1:]]
    assert steps == [3, 4]  # the resumed run did steps 3 and 4 only


def test_resume_without_checkpoint_is_a_user_error(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no checkpoint"):
        train(tiny_config(tiny_dataset["singlecoil"], tmp_path / "none"), accelerator="cpu", resume=True,
              progress=False)


def test_mixed_single_and_multicoil_training(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_config(tiny_dataset["multicoil"], tmp_path / "run", max_steps=2)
    cfg.data.extra_roots = [str(tiny_dataset["singlecoil"])]
    assert train(cfg, accelerator="cpu", devices=1, progress=False) is not None


def test_ddp_two_cpu_processes_match_single_process_gradients(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    # A subprocess: Lightning's and torch's process spawning must not re-run pytest.
    script = REPO / "tests" / "training" / "ddp_check.py"
    result = subprocess.run([sys.executable, str(script), str(tiny_dataset["singlecoil"]), str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max grad difference" in result.stdout
    diff = float(result.stdout.split("max grad difference")[1].split()[0])
    assert diff < 1e-6
    assert "lightning ddp_spawn global_step 2" in result.stdout


def test_export_of_a_training_checkpoint_keeps_steps_and_time(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    import json

    from mridiff.cli import main

    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "run", max_minutes=5.0)
    train(cfg, accelerator="cpu", progress=False)
    out = tmp_path / "exported" / "m.safetensors"
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["global_step"] == 2 and meta["training"]["seconds"] > 0
    assert 0 < meta["training"]["cpu_seconds"] <= 2 * meta["training"]["seconds"] + 60
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--out", str(out)]) != 0

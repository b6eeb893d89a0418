"""Issue 6.3: training killed with SIGKILL resumes from the last complete checkpoint; stray temp files are ignored.

A real ``python -m mridiff.cli train`` subprocess on a tiny config (``ckpt_every: 1``) is killed with SIGKILL once a
checkpoint exists, then resumed with ``--resume``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bad_inputs as bi

from mridiff.training.checkpoint import safe_torch_load

START_TIMEOUT_S = 300.0


def _train_cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mridiff.cli", "train", "-c", str(cfg), "--accelerator", "cpu", "--no-progress",
            *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(bi.ROOT)}


def _wait_for_checkpoint(proc: subprocess.Popen[bytes], last: Path, min_step: int) -> int:
    """Poll until ``last`` holds a checkpoint at ``min_step`` or later; return that step."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"training ended early:\n{proc.stderr.read().decode() if proc.stderr else ''}"
        if last.is_file():
            step = int(safe_torch_load(last)["global_step"])  # os.replace: always a complete file
            if step >= min_step:
                return step
        time.sleep(0.1)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_resume_continues_from_last_complete_checkpoint(tmp_path: Path, assets: bi.Assets) -> None:
    out = tmp_path / "run"
    cfg = bi.tiny_train_config(tmp_path / "tiny.yaml", assets.train_data, out, max_steps=100000, ckpt_every=1)
    last = out / "checkpoints" / "last.ckpt"

    proc = subprocess.Popen(_train_cmd(cfg), cwd=bi.ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_for_checkpoint(proc, last, min_step=2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()  # it really died mid-run

    killed_at = int(safe_torch_load(last)["global_step"])  # the last complete checkpoint is loadable
    assert killed_at >= 2
    # What a kill during a checkpoint write leaves behind: a half-written temp file beside last.ckpt.
    stray = last.with_name(".last.ckpt.k1ll3d.part")
    stray.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    stray_bytes = stray.read_bytes()

    resumed = subprocess.run(_train_cmd(cfg, "--resume", "--max-steps", str(killed_at + 2)), cwd=bi.ROOT,
                             env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert int(safe_torch_load(last)["global_step"]) == killed_at + 2
    with open(out / "loss.csv", newline="") as fh:
        steps = [int(row["step"]) for row in csv.DictReader(fh)]
    assert steps == [killed_at + 1, killed_at + 2]  # continued, not restarted from step 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["global_step"] == killed_at + 2
    assert stray.read_bytes() == stray_bytes  # ignored, not picked up or "repaired"

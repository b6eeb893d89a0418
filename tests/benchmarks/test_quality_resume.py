"""The row cache of benchmarks/quality.py: a run that outlasts a CPU session goes on where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import RowCache, write_json_atomic

SETTINGS = {"model_sha256": "ab" * 32, "slices": 24, "seed": 0}


def test_resumed_rows_come_back_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "quality.partial"
    row = {"method": "zero-filled", "PSNR": 24.5, "slices": 24}
    example = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    RowCache(root, SETTINGS, resume=False).put("singlecoil:4:zero-filled", row, example)
    again = RowCache(root, SETTINGS, resume=True)
    hit = again.get("singlecoil:4:zero-filled")
    assert hit is not None
    assert hit[0] == row
    np.testing.assert_array_equal(hit[1], example)
    assert again.get("singlecoil:8:zero-filled") is None  # a row never measured is computed
    assert again.reused == 1
    assert not [f for f in root.iterdir() if f.name.startswith(".")]  # writes go through a rename: no temp left


def test_a_fresh_run_does_not_reuse_rows(tmp_path: Path) -> None:
    root = tmp_path / "quality.partial"
    RowCache(root, SETTINGS, resume=False).put("k", {"PSNR": 1.0}, np.zeros((2, 4, 4), np.float32))
    fresh = RowCache(root, SETTINGS, resume=False)
    assert fresh.get("k") is None
    assert not list(root.glob("k.*"))  # the stale rows are cleared, so a later --resume cannot mix them in


def test_resume_with_other_settings_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "quality.partial"
    RowCache(root, SETTINGS, resume=False).put("k", {"PSNR": 1.0}, np.zeros((2, 4, 4), np.float32))
    with pytest.raises(SystemExit) as exc:
        RowCache(root, {**SETTINGS, "model_sha256": "cd" * 32}, resume=True)
    assert "model_sha256" in str(exc.value) and str(root) in str(exc.value)
    assert json.loads((root / "settings.json").read_text()) == SETTINGS  # the cached rows keep their settings


def test_json_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]

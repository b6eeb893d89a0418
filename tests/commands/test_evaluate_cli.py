from __future__ import annotations

import json
from pathlib import Path

import pytest

from mridiff.cli import main
from tests.test_evaluation import _pair


def test_evaluate_prints_fastmri_summary_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(2):
        _pair(tmp_path, f"f{i}.h5", (2, 40, 32), i)
    argv = ["evaluate", "--target-path", str(tmp_path / "targets"), "--predictions-path", str(tmp_path / "preds"),
            "--challenge", "singlecoil", "--json", str(tmp_path / "eval.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 volume(s) evaluated against reconstruction_esc (mean +/- 2 sd):"
    assert out[1].startswith("MSE = ") and "NMSE = " in out[1] and "PSNR = " in out[1] and "SSIM = " in out[1]
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert [v["file"] for v in doc["volumes"]] == ["f0.h5", "f1.h5"] and doc["count"] == 2
    assert main(argv) == 2  # the JSON exists: one line, nothing replaced without --overwrite
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]


def test_evaluate_missing_prediction_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pair(tmp_path, "f0.h5", (2, 32, 32), 0, prediction=False)
    assert main(["evaluate", "--target-path", str(tmp_path / "targets"), "--predictions-path",
                 str(tmp_path / "preds")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mridiff: error: {tmp_path / 'preds' / 'f0.h5'}: no prediction for target f0.h5 (every target "
                   "needs a submission file of the same name)"]

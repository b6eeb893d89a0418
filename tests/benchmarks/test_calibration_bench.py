"""benchmarks/calibration.py end to end on a tiny model and a tiny real-layout set: table, coverage, diagram."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from data_prep.cheng import main as prepare_cheng
from tests.helpers import fake_cheng_source


def test_calibration_benchmark_runs_and_never_reads_test_files_for_calibration(
        tiny_recon_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.calibration as cb

    src = fake_cheng_source(tmp_path / "src", per_folder=6, side=64)
    data = tmp_path / "cheng"
    assert prepare_cheng([str(data), "--source", str(src), "--size", "32", "--coils", "4"]) == 0
    data48 = tmp_path / "cheng48"
    assert prepare_cheng([str(data48), "--source", str(src), "--size", "48", "--coils", "4"]) == 0
    out = tmp_path / "res" / "calibration"
    monkeypatch.setattr(sys, "argv", ["calibration.py", "--model", str(tiny_recon_model), "--data", str(data),
                                      "--extra-cal-data", str(data48),
                                      "--colin27", str(tmp_path / "none"), "--cal-slices", "2", "--test-slices",
                                      "2", "--steps", "2", "--samples", "2", "--variants", "singlecoil",
                                      "--accelerations", "4", "--out", str(out)])
    cb.main()
    res = json.loads(out.with_suffix(".json").read_text())
    assert all(f.startswith(("glioma_", "pituitary_")) for f in res["calibration"]["files"])
    row = res["rows"][0]
    assert row["mode"] == "singlecoil:4x:hard:K2" and row["slices"] == 2
    # the validation split prepared at a second matrix size calibrates its own entry; the 32² test uses the 32² one
    assert set(res["calibration_slices"]) == {"singlecoil:4x:hard:K2:32px", "singlecoil:4x:hard:K2:48px"}
    assert row["entry"] == "singlecoil:4x:hard:K2:32px" and row["matrix"] == 32
    assert 0.0 <= row["coverage"]["0.9"]["object"] <= 1.0
    assert out.with_name("calibration_real.png").is_file()
    assert set(row["spearman"]) <= {"whole image", "object", "tumour box", "background"}
    assert "whole image" in row["spearman"] and -1.0 <= row["spearman"]["whole image"] <= 1.0
    assert "Spearman background" in out.with_suffix(".md").read_text()
    # the oracle ceiling (true local RMS error) ranks the errors at least as well as the std map does
    assert set(row["spearman_ceiling"]) == set(row["spearman"])
    assert row["spearman_ceiling"]["whole image"] >= row["spearman"]["whole image"]


def test_calibration_refuses_files_outside_the_validation_split(tiny_recon_model: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.calibration as cb

    src = fake_cheng_source(tmp_path / "src", per_folder=6, side=64)
    data = tmp_path / "cheng"
    assert prepare_cheng([str(data), "--source", str(src), "--size", "32", "--coils", "1"]) == 0
    val_list = data / "splits" / "val.txt"
    val_list.write_text("\n".join(val_list.read_text().splitlines()[1:]) + "\n")  # one val file no longer listed
    monkeypatch.setattr(sys, "argv", ["calibration.py", "--model", str(tiny_recon_model), "--data", str(data),
                                      "--colin27", str(tmp_path / "none"), "--cal-slices", "8", "--steps", "2",
                                      "--samples", "2", "--variants", "singlecoil", "--accelerations", "4",
                                      "--out", str(tmp_path / "res" / "c")])
    with pytest.raises(SystemExit, match="outside the validation split"):
        cb.main()


def test_calibration_benchmark_measures_the_table_stored_by_mridiff_calibrate(
        tiny_recon_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.calibration as cb
    from mridiff.cli import main as cli

    src = fake_cheng_source(tmp_path / "src", per_folder=6, side=64)
    data = tmp_path / "cheng"
    assert prepare_cheng([str(data), "--source", str(src), "--size", "32", "--coils", "1"]) == 0
    args = ["--colin27", str(tmp_path / "none"), "--test-slices", "2", "--steps", "2", "--samples", "2",
            "--variants", "singlecoil", "--accelerations", "4", "--table-from-model", "--data", str(data)]
    monkeypatch.setattr(sys, "argv", ["calibration.py", "--model", str(tiny_recon_model), *args,
                                      "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="no calibration entry"):
        cb.main()  # an uncalibrated model has nothing to measure
    calibrated = tmp_path / "cal.safetensors"
    assert cli(["calibrate", "--model", str(tiny_recon_model), "--data", str(data / "singlecoil_val"), "--dc",
                "hard", "--samples", "2", "--steps", "2", "--accelerations", "4", "--max-files", "2",
                "--out", str(calibrated), "--no-progress"]) == 0
    out = tmp_path / "res" / "b"
    monkeypatch.setattr(sys, "argv", ["calibration.py", "--model", str(calibrated), *args, "--out", str(out)])
    cb.main()
    res = json.loads(out.with_suffix(".json").read_text())
    stored = json.loads(calibrated.with_suffix(".json").read_text())["calibration"]
    assert res["calibration"]["table"] == stored["table"]  # measured, not re-made
    assert res["calibration_slices"] == {"singlecoil:4x:hard:K2:32px": 2}

"""``mridiff prepare``: the data-preparation tools of an installed mridiff, outside the checkout (issue 14, item 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from mridiff.cli import build_parser, main
from mridiff.commands.prepare import BUNDLED_COILS, BUNDLED_MATRIX, REAL_SET_MATRIX, TOOLS, run_standalone
from mridiff.prep.cheng import default_source
from tests.helpers import fake_cheng_source

WEIGHTS = Path(__file__).resolve().parents[2] / "mridiff" / "weights"


def _outside_checkout(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mridiff`` script from ``cwd``, with nothing of the checkout on the import path."""
    script = Path(sys.executable).with_name("mridiff")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([str(script), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_prepare_runs_from_outside_the_checkout(nifti_file: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    res = _outside_checkout(["prepare", "--help"], work)
    assert res.returncode == 0, res.stderr
    assert all(name in res.stdout for name in TOOLS)
    res = _outside_checkout(["prepare", "nifti", str(nifti_file), "out", "--coils", "1", "--size", "16"], work)
    assert res.returncode == 0, res.stderr
    with h5py.File(work / "out" / "head_t1.h5", "r") as fh:
        assert fh["kspace"].shape[1:] == (16, 16) and fh.attrs["simulated"]
    res = _outside_checkout(["prepare", "split", "out", "--out", "splits"], work)
    assert res.returncode == 0, res.stderr
    assert (work / "splits" / "train.txt").read_text() == "head_t1.h5\n"


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "split", str(tmp_path / "missing"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert main(["prepare", "cheng", str(tmp_path / "o"), "--size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be positive" in err
    # the stand-alone form (python -m data_prep.X) shows defaults in --help, keeps its "error: " prefix, and usage
    # errors are one line too
    with pytest.raises(SystemExit) as done:
        run_standalone("split", ["--help"])
    assert done.value.code == 0 and "(default: 0)" in capsys.readouterr().out
    assert run_standalone("split", ["--val"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_defaults_match_the_bundled_models() -> None:
    cards = {card.stem: json.loads(card.read_text()) for card in WEIGHTS.glob("*.json")}
    assert set(cards) == {"recon", "sr_x2", "augment"}
    for name, meta in cards.items():  # template models at 128, real-data models on the 256 set (patches of it), or
        # at the size their config resamples whole slices to (the augmentation generator: 128)
        real = str(meta["training"]["data_root"]).endswith("train_images.h5")
        resampled = meta["training"]["config"]["data"].get("image_size")
        side = (resampled or REAL_SET_MATRIX) if real else BUNDLED_MATRIX
        assert meta["training"]["image_size"] == [side, side], name
    assert cards["augment"]["training"]["image_size"] == [BUNDLED_MATRIX, BUNDLED_MATRIX]  # what `augment` writes
    assert str(cards["recon"]["training"]["data_root"]).endswith("train_images.h5")
    lo, hi = cards["recon"]["domain"]["matrix"]  # the template-sized defaults below are inside the recon domain too
    assert lo <= BUNDLED_MATRIX <= hi and lo <= REAL_SET_MATRIX <= hi
    parser = build_parser()
    nifti = parser.parse_args(["prepare", "nifti", "in.nii.gz", "out"])
    assert (nifti.size, nifti.coils) == (BUNDLED_MATRIX, BUNDLED_COILS)
    templates = parser.parse_args(["prepare", "default-dataset", "out"])
    assert (templates.size, templates.coils, templates.snr_db) == (BUNDLED_MATRIX, BUNDLED_COILS, 30.0)
    cheng = parser.parse_args(["prepare", "cheng", "out"])
    assert (cheng.size, cheng.coils) == (REAL_SET_MATRIX, BUNDLED_COILS)  # the set the *_real configs train on


def test_cheng_source_from_mridiff_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake_cheng_source(tmp_path / "shared" / "data" / "cheng_brain_tumor")
    monkeypatch.setenv("MRIDIFF_SHARED", str(tmp_path / "shared"))
    assert default_source() == tmp_path / "shared" / "data" / "cheng_brain_tumor"
    assert main(["prepare", "cheng", str(tmp_path / "out"), "--size", "16", "--coils", "2", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"train": 1, "val": 1, "test": 1}
    assert (tmp_path / "out" / "train_images.h5").is_file()

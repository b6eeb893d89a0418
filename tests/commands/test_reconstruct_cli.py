from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from fastmri import evaluate as fm_eval
from PIL import Image

from mridiff.cli import main


@pytest.fixture
def scan(tiny_dataset: dict[str, Path], tmp_path: Path) -> Path:
    src = next(tiny_dataset["singlecoil"].glob("*.h5"))
    target_dir = tmp_path / "targets"
    target_dir.mkdir()
    return Path(shutil.copy(src, target_dir / src.name))


def test_reconstruct_writes_all_outputs(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    before = scan.read_bytes()
    rc = main(["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--steps", "2", "--samples", "2",
               "--out", str(out), "--no-progress", "--batch-size", "2"])
    assert rc == 0, capsys.readouterr().err
    assert scan.read_bytes() == before  # input untouched
    sub = out / "reconstructions" / scan.name
    with h5py.File(sub, "r") as fh:
        recon = fh["reconstruction"][()]
        assert recon.dtype == np.float32 and "uncertainty" in fh
    with h5py.File(scan, "r") as fh:
        assert recon.shape == fh["reconstruction_esc"].shape
    stem = scan.stem
    img = nib.load(out / "nifti" / f"{stem}.nii.gz")
    assert img.shape == (recon.shape[2], recon.shape[1], recon.shape[0])
    assert np.allclose(np.asarray(img.dataobj).transpose(2, 1, 0), recon)
    assert nib.load(out / "nifti" / f"{stem}_std.nii.gz").shape == img.shape
    png = Image.open(out / "figures" / f"{stem}.png")
    assert png.size[0] == 5 * 32
    metrics = json.loads((out / "metrics.json").read_text())["files"][0]
    assert set(metrics["mridiff"]) == {"NMSE", "PSNR", "SSIM"} and "uncertainty" in metrics
    assert not list(out.rglob("*.part"))

    # fastMRI's own evaluation accepts the submission layout.
    args = argparse.Namespace(target_path=scan.parent, predictions_path=out / "reconstructions",
                              acquisition=None, acceleration=None)
    stats = fm_eval.evaluate(args, "reconstruction_esc")
    means = stats.means()
    assert abs(means["PSNR"] - metrics["mridiff"]["PSNR"]) < 1e-6
    assert abs(means["SSIM"] - metrics["mridiff"]["SSIM"]) < 1e-6


def test_existing_output_needs_overwrite(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--steps", "1", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert main([*argv, "--overwrite"]) == 0


def test_missing_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconstruct", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.h5" in err[0]

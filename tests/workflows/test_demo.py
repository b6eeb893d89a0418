"""``mridiff demo`` plumbing with a tiny random model: the scan, every output, the table and the no-overwrite rule."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from mridiff.errors import InputError
from mridiff.workflows.demo import DemoOptions, format_table, run_demo


def test_demo_writes_every_output_and_a_table(tiny_recon_model: Path, tmp_path: Path) -> None:
    opts = DemoOptions(out=tmp_path / "demo", steps=1, samples=2, ckpt=str(tiny_recon_model), progress=False,
                       accelerations=(4,))
    rows = run_demo(opts)
    assert [r["acceleration"] for r in rows] == [4]
    with h5py.File(opts.out / "colin27_demo.h5", "r") as fh:
        assert fh["kspace"].ndim == 4 and fh["kspace"].shape[1] == 8  # simulated 8-coil scan
    for acc in opts.accelerations:
        out = opts.out / f"x{acc}"
        assert (out / "reconstructions" / "colin27_demo.h5").is_file()
        assert (out / "nifti" / "colin27_demo.nii.gz").is_file()
        assert (out / "nifti" / "colin27_demo_std.nii.gz").is_file()
        assert (out / "figures" / "colin27_demo.png").is_file()
    assert (opts.out / "metrics.json").is_file()
    table = format_table(rows)
    assert "zero-filled" in table and table.count("\n") == 2
    for r in rows:
        assert r["zero_filled"]["PSNR"] > 0 and r["mridiff"]["SSIM"] <= 1
    with pytest.raises(InputError):  # a second run refuses to overwrite without --overwrite
        run_demo(opts)

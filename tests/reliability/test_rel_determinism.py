"""Issue 6.7: with ``--seed``, CPU reconstructions are bit-identical from run to run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import bad_inputs as bi
import h5py
import nibabel as nib
import numpy as np
import pytest


def _arrays(out: Path, stem: str) -> dict[str, np.ndarray]:
    with h5py.File(out / "reconstructions" / f"{stem}.h5", "r") as hf:
        arrays = {name: np.asarray(hf[name]) for name in hf}
    img: Any = nib.load(out / "nifti" / f"{stem}.nii.gz")
    arrays["nifti"] = np.asarray(img.dataobj)
    return arrays


@pytest.mark.parametrize("coils", [1, 4], ids=["singlecoil", "multicoil_espirit"])
def test_same_seed_gives_bit_identical_outputs(tmp_path: Path, run_recon: Callable[..., bi.Outcome],
                                               coils: int) -> None:
    scan = bi.write_good_scan(tmp_path / "scan.h5", coils=coils)
    # 13 calibration lines: enough for ESPIRiT itself (below 12 it falls back to JSENSE maps with a warning)
    flags = ("--seed", "7", "--samples", "2", "--sens-method", "espirit", "--acceleration", "2", "--center-fraction",
             "0.4")
    runs = [tmp_path / "run1", tmp_path / "run2", tmp_path / "other_seed"]
    for out in runs[:2]:
        outcome = run_recon([scan], out, *flags)
        # the only expected warning: the test model carries no calibration table for its K = 2 std map
        other = [ln for ln in outcome.stderr.splitlines() if "warning" in ln and "not calibrated" not in ln]
        assert outcome.exit_code == 0 and not other, outcome.stderr
    assert run_recon([scan], runs[2], "--seed", "8", *flags[2:]).exit_code == 0

    first, second, other = (_arrays(out, "scan") for out in runs)
    assert set(first) == {"reconstruction", "uncertainty", "nifti"}
    for name in first:
        assert first[name].dtype == second[name].dtype
        assert np.array_equal(first[name], second[name]), name  # exactly, not approximately
    assert (runs[0] / "figures" / "scan.png").read_bytes() == (runs[1] / "figures" / "scan.png").read_bytes()
    assert not np.array_equal(first["reconstruction"], other["reconstruction"])  # the seed is really used

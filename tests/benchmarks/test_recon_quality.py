"""benchmarks/recon_quality.py: rows for every method, and DDIM repeated on the (fewer) DDPM slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import benchmarks.recon_quality as rq
from mridiff.inference.reconstruct import Reconstructor
from mridiff.models.unet import ConditionalUNet
from mridiff.training.checkpoint import export_model
from tests.helpers import TINY, tiny_meta


@pytest.mark.filterwarnings("ignore:only .* calibration lines")
def test_rows_compare_ddim_and_ddpm_on_the_same_slices(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rq.SPLIT_FILES, "tiny", (str(tiny_dataset["root"] / "sc" / "vol_a.h5"), "tiny volume"))
    meta = tiny_meta()
    meta["diffusion"] = {"timesteps": 20, "schedule": "linear", "prediction": "epsilon"}  # DDPM = 20 steps
    rec = Reconstructor(export_model(ConditionalUNet(TINY), meta, tmp_path / "t20.safetensors"), device="cpu")
    rows = rq.evaluate(rec, "singlecoil", [1, 2, 3], [4], steps=2, ddpm_slices=1, seed=0, ddpm_cases=[],
                       split="tiny")
    by_method = {r["method"]: r for r in rows}
    assert list(by_method) == ["zero-filled", "DDIM-2 + DC", "DDIM-2, no DC", "DDPM-20 + DC",
                               "DDIM-2 + DC (the DDPM slices)"]
    assert by_method["zero-filled"]["slices"] == by_method["DDIM-2 + DC"]["slices"] == 3
    assert by_method["DDPM-20 + DC"]["slices"] == by_method["DDIM-2 + DC (the DDPM slices)"]["slices"] == 1
    assert by_method["DDPM-20 + DC"]["nfe"] == 20
    assert all(np.isfinite(r["PSNR"]) and r["data"].startswith("tiny volume") for r in rows)
    # No extra row when DDPM runs on all the slices.
    rows = rq.evaluate(rec, "singlecoil", [1], [4], steps=2, ddpm_slices=1, seed=0, ddpm_cases=[], split="tiny")
    assert [r["method"] for r in rows][-1] == "DDPM-20 + DC"

"""benchmarks/gpu_presets.py, the GPU check of issue 15, runs end to end on the CPU with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu_presets import GOALS, main

pytestmark = pytest.mark.filterwarnings("ignore:only .* calibration lines")


def test_quick_run_measures_every_case(tiny_recon_model: Path, tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    res = main(["--quick", "--ckpt", str(tiny_recon_model), "--images", str(tiny_dataset["singlecoil"]),
                "--out", str(tmp_path / "gpu")])
    assert res["images"].startswith("real clinical images")  # files given: their images, not the phantom
    cases = {(r["preset"], r["coils"]) for r in res["latency"]}
    assert cases == {(p, c) for p in ("fast", "balanced", "best") for c in (1, 4)}
    assert all(r["s_per_slice"] > 0 and r["peak_mem_GiB"] is None for r in res["latency"])  # no GPU: no memory
    assert all(r["coil_maps_s"] > 0 for r in res["latency"] if r["coils"] > 1)
    assert res["volume"]["slices"] == 3 and res["volume"]["s_total"] > 0
    quality = {r["precision"]: r for r in res["precision"]}
    assert set(quality) == {"fp32", "bf16"}  # an untrained network: the scores are finite, not good
    assert all(-1 <= r["ssim"] <= 1 and abs(r["psnr"]) < 200 for r in quality.values())
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["latency"] == res["latency"]
    report = (tmp_path / "gpu.md").read_text()
    assert f"balanced < {GOALS['balanced_s_per_slice']} s per slice" in report
    assert "not shown" in report  # a 3-slice volume says nothing about the 30-slice goal

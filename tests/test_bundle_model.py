"""``scripts/bundle_model.py``: bundling an exported model is checked, atomic, keeps the card, and can be rerun."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from mridiff.commands.info import describe_model
from mridiff.errors import InputError
from mridiff.inference.model import load_model
from mridiff.io.hashing import sha256_file
from mridiff.models.unet import ConditionalUNet
from mridiff.training.checkpoint import export_model
from tests.helpers import TINY, tiny_meta

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundle_model.py"
CARD = "# card\n\n<!-- bundle_model.py:recon begin -->\nold table\n<!-- bundle_model.py:recon end -->\n\ntail\n"
CALIBRATION = {"sampler": "ddim", "steps": 10,
               "table": {"singlecoil:4x:hard:K4": {"slices": 12, "quantiles": {"0.9": 1.7, "0.95": 2.1}}}}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bundle_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bundle_model"] = module
    spec.loader.exec_module(module)
    return module


bundle_model = _script()


def exported(path: Path, seed: int, task: str = "recon", **extra: object) -> Path:
    """A tiny exported model with seeded random weights and extra card entries."""
    torch.manual_seed(seed)
    meta = {**tiny_meta(task), **extra}
    meta["training"] = {"image_size": [32, 32], "global_step": 1234, "seconds": 7200.0, "cpu_seconds": 3600.0,
                        "data_root": "work_data/cheng256/train_images.h5",
                        "config": {"data": {"patch": 16, "intensity_remap": True, "geometry": True},
                                   "train": {"batch_size": 12}}}
    return export_model(ConditionalUNet(TINY), meta, path)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_bundle_copies_checks_keeps_calibration_and_regenerates_the_card_table(tmp_path: Path) -> None:
    src = exported(tmp_path / "src" / "model.safetensors", 0, calibration=CALIBRATION,
                   domain={"matrix": [16, 48], "contrast": "any"})
    dest = tmp_path / "weights"
    dest.mkdir()
    (dest / "MODEL_CARD.md").write_text(CARD)
    assert bundle_model.main([str(src), "--name", "recon", "--dest", str(dest)]) == 0
    placed = dest / "recon.safetensors"
    digest = sha256_file(placed)
    assert placed.read_bytes() == src.read_bytes()
    card = json.loads(placed.with_suffix(".json").read_text())
    assert card["sha256"] == digest and card["calibration"] == CALIBRATION and card["domain"]["matrix"] == [16, 48]
    assert placed.with_suffix(".sha256").read_text() == f"{digest}  recon.safetensors\n"
    assert load_model(placed, "recon", "cpu").meta["sha256"] == digest
    lines, ok = describe_model("recon", placed)
    assert ok and any("calibrated singlecoil:4x:hard:K4" in line for line in lines)
    text = (dest / "MODEL_CARD.md").read_text()
    assert "old table" not in text and text.startswith("# card") and text.endswith("tail\n")
    params = sum(p.numel() for p in ConditionalUNet(TINY).parameters())
    for fact in (f"| parameters | {params:,} |", "1234 (batch 12, 16x16 patches of 32x32 images)", "3600.0 s",
                 "7200.0 s", digest, "matrix 16-48 pixels, contrast any", "singlecoil:4x:hard:K4"):
        assert fact in text, fact
    assert sorted(p.name for p in dest.iterdir()) == ["MODEL_CARD.md", "recon.json", "recon.safetensors",
                                                       "recon.sha256"]  # no staging folder left behind


def test_bundle_is_rerunnable_and_replaces_the_previous_model(tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    first = bundle_model.bundle(exported(tmp_path / "a" / "m.safetensors", 0), "recon", dest)
    second = bundle_model.bundle(exported(tmp_path / "b" / "m.safetensors", 1), "recon", dest)
    again = bundle_model.bundle(tmp_path / "b" / "m.safetensors", "recon", dest)
    assert first.sha256 != second.sha256 == again.sha256 == sha256_file(dest / "recon.safetensors")
    assert json.loads((dest / "recon.json").read_text())["sha256"] == second.sha256
    assert "calibration" not in json.loads((dest / "recon.json").read_text())  # nothing invented


def test_a_bad_source_changes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    bundle_model.bundle(exported(tmp_path / "good" / "m.safetensors", 0), "recon", dest)
    before = snapshot(dest)
    damaged = exported(tmp_path / "bad" / "m.safetensors", 1)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        bundle_model.bundle(damaged, "recon", dest)
    augment = exported(tmp_path / "aug" / "m.safetensors", 2, task="augment")
    with pytest.raises(InputError, match="cannot be bundled as recon"):
        bundle_model.bundle(augment, "recon", dest)
    other = exported(tmp_path / "other" / "m.safetensors", 3)
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        bundle_model.bundle(other, "recon", dest, expect_sha256="0" * 64)
    assert snapshot(dest) == before


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bundle_model.main([str(tmp_path / "missing.safetensors"), "--name", "recon", "--dest",
                              str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model file not found" in err


def test_info_reports_a_mismatch(tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    placed = bundle_model.bundle(exported(tmp_path / "a" / "m.safetensors", 0), "recon", dest).path
    assert describe_model("recon", placed)[1]
    assert not describe_model("sr", placed)[1]  # a card for another task
    placed.with_suffix(".sha256").write_text("0" * 64 + "  recon.safetensors\n")
    lines, ok = describe_model("recon", placed)
    assert not ok and "MISMATCH" in lines[1]

"""Issue 14, items 10 and 15: TensorBoard as an option with sample images, a step/ETA progress bar without vendor
adverts, and ``--resume`` of a finished run saying how to continue."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mridiff.config import config_from_dict
from mridiff.errors import InputError
from mridiff.training import tracking
from mridiff.training.progress import estimate_eta, format_eta
from mridiff.training.run import train
from mridiff.training.tracking import VendorTipFilter, sample_grid
from tests.helpers import tiny_config


def test_logger_is_validated_like_the_other_fields() -> None:
    assert config_from_dict({}).train.logger == "csv"
    assert config_from_dict({"train": {"logger": "tensorboard"}}).train.logger == "tensorboard"
    with pytest.raises(InputError, match="'train.logger' must be one of csv, tensorboard, got 'wandb'"):
        config_from_dict({"train": {"logger": "wandb"}}, "run.yaml")


def test_tensorboard_logs_losses_metrics_and_sample_images(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "run", max_steps=2, val_every=2, val_slices=1,
                      val_steps=1, logger="tensorboard")
    assert train(cfg, accelerator="cpu", devices=1, progress=False) is not None
    events = sorted((tmp_path / "run" / "tensorboard").glob("version_*/events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert {"train/loss", "val/psnr", "val/ssim"} <= set(acc.Tags()["scalars"])
    (tag,) = acc.Tags()["images"]
    image = acc.Images(tag)[0]
    assert image.step == 2 and (image.height, image.width) == (64, 32)  # target above sample, 32x32 each
    assert (tmp_path / "run" / "logs").is_dir()  # the CSV log is kept beside TensorBoard


def test_tensorboard_missing_is_one_line_before_training(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "tensorboard_available", lambda: False)
    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "run", logger="tensorboard")
    with pytest.raises(InputError, match=r"tensorboard package is not installed \(pip install 'mridiff\[tracking\]'"):
        train(cfg, accelerator="cpu", devices=1, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sample_grid_puts_targets_above_samples() -> None:
    targets = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 2.0)])
    grid = sample_grid(targets, targets / 2)
    assert grid.shape == (8, 8) and grid.dtype == np.uint8
    assert grid[0, 0] == 255 and grid[4, 0] == 128  # each pair on its target's white level


def test_eta_takes_the_nearer_limit() -> None:
    # 10 steps in 20 s: 90 steps left = 180 s, unless the time limit comes first
    assert estimate_eta(10, 0, 20.0, 100, 20.0, None) == (180.0, "max_steps")
    assert estimate_eta(10, 0, 20.0, 100, 20.0, 60.0) == (40.0, "max_minutes")
    assert estimate_eta(50, 50, 3.0, 100, 300.0, None) is None  # no step yet in this invocation
    assert format_eta((3725.0, "max_steps")) == "ETA 1:02:05 (max_steps)"


def test_progress_shows_steps_and_eta_without_adverts(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "run", max_steps=3, max_minutes=30.0)
    train(cfg, accelerator="cpu", devices=1, progress=True)
    out, err = capfd.readouterr()
    both = out + err + caplog.text
    assert "3/3 steps" in both and "ETA" in both and "(max_steps)" in both and "training (max 30 min)" in both
    assert "💡" not in both and "litlogger" not in both and "litmodels" not in both
    assert VendorTipFilter().filter(_record("💡 Tip: For seamless cloud logging, try installing litlogger")) is False


def test_resume_at_max_steps_says_how_to_continue(tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_dataset["singlecoil"], out, max_steps=2), accelerator="cpu", devices=1, progress=False)
    with pytest.raises(InputError, match=r"already reached max_steps \(2 of 2\).*--resume --max-steps 4"):
        train(tiny_config(tiny_dataset["singlecoil"], out, max_steps=2), accelerator="cpu", devices=1, resume=True,
              progress=False)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("pytorch_lightning", logging.INFO, __file__, 1, message, None, None)

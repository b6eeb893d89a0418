"""Experiment tracking for ``mridiff train``: the loggers (CSV, TensorBoard), sample images, no vendor adverts.

``train.logger: csv`` keeps Lightning's CSV log (``out_dir/logs/version_*/metrics.csv``); ``tensorboard`` writes
TensorBoard event files as well (``out_dir/tensorboard/version_*/``: losses, validation PSNR/SSIM and, at each
validation, the validation slices next to their samples). The CSV log is always kept: ``loss.csv`` /
``scripts/save_training_state.py`` read it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from mridiff.config import RunConfig
from mridiff.errors import InputError
from mridiff.io.figures import to_uint8, white_level

# Lightning prints promotions for its commercial services at INFO level ("💡 Tip: ... litlogger / litmodels").
VENDOR_TIP_MARKERS = ("💡 Tip", "litlogger", "litmodels", "lightning.ai")
LIGHTNING_LOGGERS = ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric",
                     "lightning_fabric.utilities.rank_zero", "lightning.pytorch", "lightning.fabric")


class VendorTipFilter(logging.Filter):
    """Drops Lightning's promotional log lines; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a promotion."""
        message = record.getMessage()
        return not any(marker in message for marker in VENDOR_TIP_MARKERS)


def suppress_vendor_tips() -> None:
    """Install :class:`VendorTipFilter` on Lightning's loggers and their handlers (idempotent)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [logger, *logger.handlers]
        for target in targets:
            if not any(isinstance(f, VendorTipFilter) for f in target.filters):
                target.addFilter(VendorTipFilter())


def tensorboard_available() -> bool:
    """Whether Lightning's TensorBoardLogger can write (``tensorboard`` or ``tensorboardX`` installed)."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def check_logger(cfg: RunConfig) -> None:
    """Refuse ``train.logger: tensorboard`` without a TensorBoard writer, before Lightning starts.

    Raises:
        InputError: if neither ``tensorboard`` nor ``tensorboardX`` is installed.
    """
    if cfg.train.logger == "tensorboard" and not tensorboard_available():
        raise InputError(None, "train.logger is 'tensorboard' but the tensorboard package is not installed",
                         "pip install 'mridiff[tracking]', or set train.logger: csv")


def make_loggers(cfg: RunConfig) -> list[Logger]:
    """The run's Lightning loggers: always CSV (``out_dir/logs``), plus TensorBoard (``out_dir/tensorboard``)."""
    check_logger(cfg)
    loggers: list[Logger] = [CSVLogger(cfg.out_dir, name="logs")]
    if cfg.train.logger == "tensorboard":
        loggers.append(TensorBoardLogger(str(Path(cfg.out_dir)), name="tensorboard", default_hp_metric=False))
    return loggers


def sample_grid(targets: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Validation slices (top row) above their samples (bottom row), each pair on the target's white level.

    Args:
        targets: float ``(B, H, W)`` magnitudes.
        samples: float ``(B, H, W)`` magnitudes.

    Returns:
        uint8 ``(2 H, B W)``.
    """
    columns = []
    for target, sample in zip(targets, samples, strict=True):
        vmax = white_level(target)
        columns.append(np.concatenate([to_uint8(target, vmax), to_uint8(sample, vmax)], axis=0))
    return np.concatenate(columns, axis=1)


def log_sample_images(loggers: Iterable[Logger], samples: dict[str, np.ndarray] | None, step: int) -> int:
    """Send the validation grid to every logger that shows images (TensorBoard's ``add_image``).

    Args:
        loggers: the trainer's loggers.
        samples: ``{"target": (B, H, W), "sample": (B, H, W)}`` from the last validation, or ``None``.
        step: the global step.

    Returns:
        How many loggers received the image.
    """
    if not samples or "target" not in samples or "sample" not in samples:
        return 0
    grid: Any = None
    sent = 0
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            continue  # no images in CSV (and asking for .experiment would create its folder)
        add_image = getattr(getattr(logger, "experiment", None), "add_image", None)
        if not callable(add_image):
            continue
        if grid is None:
            grid = sample_grid(samples["target"], samples["sample"])
        add_image("val/samples (top: target, bottom: sample)", grid, step, dataformats="HW")
        sent += 1
    return sent

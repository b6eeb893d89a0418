"""Lightning callbacks of ``mridiff train``: the loss history, the final checkpoint and step-based validation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from mridiff.training.data import SliceDataModule
from mridiff.training.module import DiffusionModule
from mridiff.training.tracking import log_sample_images

log = logging.getLogger(__name__)


class LossHistory(Callback):
    """Keeps (step, loss) pairs for the training log and the exported model card."""

    def __init__(self) -> None:
        self.history: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Record the step's loss."""
        if isinstance(outputs, dict) and "loss" in outputs:
            self.history.append((trainer.global_step, float(outputs["loss"].detach())))
        elif isinstance(outputs, torch.Tensor):
            self.history.append((trainer.global_step, float(outputs.detach())))


class FinalCheckpoint(Callback):
    """Save ``last.ckpt`` when training ends (not only every ``ckpt_every`` steps), inside the training processes.

    Saving after ``fit`` returns would be wrong for ``ddp_spawn``: the launching process never sees the steps.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the final training state (rank 0 writes; every rank must call)."""
        trainer.save_checkpoint(self.path, weights_only=False)  # the full training state, to resume


class PeriodicValidation(Callback):
    """Run validation every ``every`` optimiser steps (Lightning's epoch-based schedule does not fit).

    Metrics go to every logger; the validation slices and their samples go to loggers that show images
    (TensorBoard). ``history`` keeps ``(step, val/psnr)`` for the loss figure.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.history: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Validate on the fixed slices and log PSNR/SSIM."""
        step = trainer.global_step
        if not (self.every and step % self.every == 0 and step > 0):
            return
        dm: SliceDataModule = trainer.datamodule  # type: ignore[attr-defined]
        assert isinstance(pl_module, DiffusionModule)
        pl_module.eval()
        batch_val = {k: v.to(pl_module.device) for k, v in dm.validation_batch().items()}
        metrics = pl_module.sample_metrics(batch_val)
        pl_module.train()
        pl_module.log_dict(metrics, prog_bar=True, rank_zero_only=True)
        log.info("step %d validation %s", step, metrics)
        if "val/psnr" in metrics:
            self.history.append((step, metrics["val/psnr"]))
        if trainer.is_global_zero:
            log_sample_images(trainer.loggers, getattr(pl_module, "last_samples", None), step)

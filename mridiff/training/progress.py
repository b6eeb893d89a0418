"""Training progress: one bar over optimiser steps against ``max_steps``, with an ETA that honours ``max_minutes``.

Lightning's own bar counts batches per epoch, which says nothing about when a step- or time-limited run ends.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, Timer
from tqdm import tqdm


def estimate_eta(step: int, start_step: int, seconds: float, max_steps: int, run_seconds: float,
                 max_seconds: float | None) -> tuple[float, str] | None:
    """Seconds until the run stops, and which limit stops it.

    Args:
        step: global step now.
        start_step: global step when this invocation started (``> 0`` after ``--resume``).
        seconds: wall seconds since this invocation started.
        max_steps: the step limit.
        run_seconds: training seconds of the whole run (Lightning's timer, restored on ``--resume``).
        max_seconds: the time limit (``max_minutes * 60``), or ``None``.

    Returns:
        ``(seconds, "max_steps" | "max_minutes")``, or ``None`` before the first step (no rate yet).
    """
    done = step - start_step
    if done <= 0 or seconds <= 0:
        return None
    by_steps = max(max_steps - step, 0) * seconds / done
    if max_seconds is not None and max_seconds - run_seconds < by_steps:
        return max(max_seconds - run_seconds, 0.0), "max_minutes"
    return by_steps, "max_steps"


def format_eta(eta: tuple[float, str] | None) -> str:
    """``"ETA 0:12:34 (max_steps)"``, or ``"ETA ?"`` without a rate."""
    if eta is None:
        return "ETA ?"
    return f"ETA {timedelta(seconds=round(eta[0]))} ({eta[1]})"


class StepProgressBar(ProgressBar):
    """A tqdm bar over optimiser steps: ``step/max_steps``, loss, validation PSNR and the ETA (stderr).

    Args:
        max_steps: the run's step limit.
        max_minutes: the run's time limit, or ``None``.
    """

    def __init__(self, max_steps: int, max_minutes: float | None) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.max_seconds = max_minutes * 60.0 if max_minutes else None
        self._enabled = True
        self._bar: tqdm[Any] | None = None
        self._start_step = 0
        self._start_time = 0.0

    def disable(self) -> None:
        """Turn the bar off (Lightning calls this on ranks other than 0)."""
        self._enabled = False

    def enable(self) -> None:
        """Turn the bar on."""
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Open the bar at the current global step (not 0 after ``--resume``)."""
        if not self._enabled:
            return
        self._start_step, self._start_time = trainer.global_step, time.monotonic()
        limit = f" (max {self.max_seconds / 60:g} min)" if self.max_seconds else ""
        self._bar = tqdm(total=self.max_steps, initial=self._start_step, desc=f"training{limit}",
                         unit="step", file=sys.stderr, dynamic_ncols=True,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Advance to the global step and refresh loss, validation PSNR and ETA."""
        if self._bar is None:
            return
        step = trainer.global_step
        metrics = trainer.progress_bar_metrics
        parts = [f"{key.split('/')[-1]} {float(metrics[key]):.4g}" for key in ("train/loss", "val/psnr")
                 if key in metrics]
        eta = estimate_eta(step, self._start_step, time.monotonic() - self._start_time, self.max_steps,
                           self._run_seconds(trainer), self.max_seconds)
        self._bar.set_postfix_str(", ".join([*parts, format_eta(eta)]), refresh=False)
        self._bar.update(step - self._bar.n)
        if step >= self.max_steps:  # close before Lightning's "max_steps reached" line, which would splice into it
            self.on_train_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _run_seconds(self, trainer: pl.Trainer) -> float:
        timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]  # type: ignore[attr-defined]
        if timers:
            return float(timers[0].time_elapsed("train"))
        return time.monotonic() - self._start_time

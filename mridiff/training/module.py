"""Lightning module: diffusion training of the conditional U-Net, EMA weights, short validation sampling.

The module owns the network and the schedule only; the reverse loop used for validation is the same
:func:`mridiff.diffusion.loop.reverse_diffusion` used at inference.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.optim.swa_utils import AveragedModel

from mridiff.config import RunConfig
from mridiff.diffusion.loop import reverse_diffusion
from mridiff.diffusion.samplers import DDIMSampler, complex_randn
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.metrics import psnr, ssim
from mridiff.models.unet import ConditionalUNet
from mridiff.physics.consistency import Hard
from mridiff.tasks.registry import get_task

WARMUP_STEPS = 200


def schedule_from_config(cfg: RunConfig) -> NoiseSchedule:
    """The noise schedule named by a run config."""
    d = cfg.diffusion
    return NoiseSchedule(d.timesteps, d.schedule, d.prediction)


class EmaUpdate:
    """EMA update with warm-up: decay_n = min(decay, (1 + n) / (10 + n)) after n updates.

    A fixed decay (e.g. 0.999) keeps the random initial weights in the average for thousands of steps, which
    ruins short runs; the warm-up lets the average follow the network early and settle later. A class, not a
    closure, so that the module pickles for ``ddp_spawn``.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor | int) -> torch.Tensor:
        """Return the updated average."""
        n = float(num_averaged)
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        return d * averaged + (1.0 - d) * current


class DiffusionModule(pl.LightningModule):
    """Conditional DDPM training.

    Args:
        cfg: the run configuration (its ``model`` section sizes the U-Net).

    """

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = ConditionalUNet(cfg.model)
        self.schedule = schedule_from_config(cfg)
        self.ema = AveragedModel(self.net, avg_fn=EmaUpdate(cfg.train.ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        # CPU seconds of training (this process, all its threads), summed over --resume: the honest budget when a
        # run shares a core, where wall-clock time overstates it.
        self._cpu_base = 0.0
        self._cpu_start: float | None = None
        # Training totals of the model this run continued from (train.init_from), kept in every checkpoint so that
        # an export from last.ckpt still counts them, even after the source file was replaced.
        self.prior_totals: dict[str, Any] = {"steps": 0, "seconds": 0.0, "cpu_seconds": 0.0}

    def cpu_seconds(self) -> float:
        """CPU seconds spent training this run so far, earlier invocations (``--resume``) included."""
        running = time.process_time() - self._cpu_start if self._cpu_start is not None else 0.0
        return self._cpu_base + running

    def on_train_start(self) -> None:
        """Start the CPU-time count of this invocation."""
        self._cpu_start = time.process_time()

    def loss(self, batch: dict[str, torch.Tensor], t: torch.Tensor | None = None,
             eps: torch.Tensor | None = None) -> torch.Tensor:
        """L_simple for a batch; ``t`` and ``eps`` may be fixed (tests of DDP gradients do so).

        Args:
            batch: ``target`` (B, H, W) complex or real, optional ``cond``.
            t: timesteps (B,), drawn uniformly when ``None``.
            eps: noise shaped like the target, drawn when ``None``.

        """
        x0 = batch["target"]
        if t is None:
            t = torch.randint(0, self.schedule.num_train_timesteps, (x0.shape[0],), device=x0.device)
        if eps is None:
            eps = complex_randn(x0)
        x_t = self.schedule.add_noise(x0, eps, t)
        pred = self.net(x_t, batch.get("cond"), t)
        target = self.schedule.training_target(x0, eps, t)
        diff = pred - target
        err = (torch.view_as_real(diff) if diff.is_complex() else diff).float().pow(2)
        gamma = self.cfg.train.min_snr_gamma
        if gamma is None:
            return err.mean()  # L_simple
        weight = self.schedule.min_snr_weight(t, gamma).to(err)
        return (err.reshape(err.shape[0], -1).mean(dim=1) * weight).mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step."""
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, sync_dist=False)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Update the EMA copy after each optimiser step."""
        self.ema.update_parameters(self.net)

    @torch.no_grad()
    def sample_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """A short DDIM run with the EMA weights on the task's validation problem; PSNR/SSIM on magnitudes."""
        problem = get_task(self.cfg.task).validation_problem(batch)
        if problem is None or problem.target is None:
            return {}  # e.g. unconditional samples have no per-slice ground truth
        target = problem.target
        sampler = DDIMSampler(self.schedule, self.cfg.train.val_steps)
        x_init = complex_randn(target, torch.Generator().manual_seed(0))
        out = reverse_diffusion(self.ema.module, self.schedule, sampler, problem, Hard(), x_init)
        gt = target.abs().float().cpu().numpy()
        pred = out.abs().float().cpu().numpy()
        self.last_samples = {"target": gt, "sample": pred}  # (B, H, W) magnitudes, for loggers that show images
        return {
            "val/psnr": float(np.mean([psnr(g, p) for g, p in zip(gt, pred, strict=True)])),
            "val/ssim": float(np.mean([ssim(g[None], p[None]) for g, p in zip(gt, pred, strict=True)])),
        }

    def configure_optimizers(self) -> Any:
        """AdamW with a linear warm-up."""
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.cfg.train.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / WARMUP_STEPS))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the config and RNG states as primitives and tensors only (loadable with weights_only=True)."""
        checkpoint["mridiff_config"] = json.dumps(self.cfg.to_dict())
        checkpoint["cpu_seconds"] = float(self.cpu_seconds())
        checkpoint["mridiff_prior"] = json.dumps(self.prior_totals)
        np_state = np.random.get_state()
        assert isinstance(np_state, tuple)  # the legacy (name, keys, pos, ...) form
        checkpoint["rng"] = {
            "torch": torch.get_rng_state(),
            "python": json.dumps(random.getstate()),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore RNG states and the CPU-time count saved by :meth:`on_save_checkpoint`."""
        self._cpu_base = float(checkpoint.get("cpu_seconds", 0.0))
        if "mridiff_prior" in checkpoint:
            self.prior_totals = json.loads(checkpoint["mridiff_prior"])
        rng = checkpoint.get("rng")
        if not rng:
            return
        torch.set_rng_state(rng["torch"])
        state = json.loads(rng["python"])
        random.setstate((state[0], tuple(state[1]), state[2]))
        np.random.set_state(("MT19937", rng["numpy"]["keys"].numpy().astype(np.uint32), rng["numpy"]["pos"], 0, 0.0))

"""``mridiff train``: build the task's data, the module and a Lightning trainer, then fit and export.

CUDA first (bf16 autocast, DDP over ``devices`` x ``num_nodes``); CPU for small configs. Checkpoints are
written atomically every ``ckpt_every`` steps to ``out_dir/checkpoints/last.ckpt``; ``resume=True``
continues from there at the same global step. At the end the EMA weights are exported for inference, with the
loss curve (``loss.csv``, ``loss.png``). Progress is one bar over steps against ``max_steps`` with an ETA that
also honours ``max_minutes``; logs go to CSV and, with ``train.logger: tensorboard``, to TensorBoard.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import h5py
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, Timer

from mridiff.config import RunConfig
from mridiff.data.fastmri_h5 import open_scan
from mridiff.errors import InputError
from mridiff.models.unet import UNetConfig
from mridiff.tasks.registry import example_builder
from mridiff.training.callbacks import FinalCheckpoint, LossHistory, PeriodicValidation
from mridiff.training.checkpoint import SafeCheckpointIO, export_model, load_exported, safe_torch_load
from mridiff.training.data import SliceDataModule, list_files
from mridiff.training.module import DiffusionModule
from mridiff.training.progress import StepProgressBar
from mridiff.training.tracking import check_logger, make_loggers, suppress_vendor_tips

log = logging.getLogger(__name__)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` means bf16 autocast on CUDA and fp32 on CPU."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if accelerator == "gpu" else "32-true"


def build_trainer(cfg: RunConfig, devices: int | str = "auto", num_nodes: int = 1, accelerator: str = "auto",
                  strategy: str = "auto", extra_callbacks: list[Callback] | None = None,
                  progress: bool = True) -> pl.Trainer:
    """A Lightning trainer with safe atomic checkpoints and the run's limits."""
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    ckpt = ModelCheckpoint(dirpath=Path(cfg.out_dir) / "checkpoints", filename="step{step}", save_last=True,
                           every_n_train_steps=cfg.train.ckpt_every, save_top_k=0, auto_insert_metric_name=False)
    n_dev = devices if devices != "auto" else (torch.cuda.device_count() or 1 if accelerator == "gpu" else 1)
    if strategy == "auto" and isinstance(n_dev, int) and (n_dev > 1 or num_nodes > 1):
        strategy = "ddp"
    max_time = timedelta(minutes=cfg.train.max_minutes) if cfg.train.max_minutes else None
    callbacks = [ckpt, *(extra_callbacks or [])]
    if progress:
        callbacks.append(StepProgressBar(cfg.train.max_steps, cfg.train.max_minutes))
    suppress_vendor_tips()
    return pl.Trainer(
        accelerator=accelerator,
        devices=n_dev,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=resolve_precision(cfg.train.precision, accelerator),  # type: ignore[arg-type]
        max_steps=cfg.train.max_steps,
        max_time=max_time,
        gradient_clip_val=cfg.train.grad_clip,
        log_every_n_steps=cfg.train.log_every,
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()],
        default_root_dir=cfg.out_dir,
        enable_progress_bar=progress,
        logger=make_loggers(cfg),
        use_distributed_sampler=True,
        benchmark=accelerator == "gpu",
    )


def check_resumable(state: Any, cfg: RunConfig, last: Path) -> None:
    """Refuse to resume a checkpoint whose run had another task, network or diffusion schedule than ``cfg``.

    The weights in the checkpoint belong to the network its run was configured with; continuing them under another
    config would fail inside Lightning, or worse, export weights labelled with the wrong task or network.

    Raises:
        InputError: For a checkpoint without mridiff's stored config, or one whose run differs from ``cfg``.

    """
    raw = state.get("mridiff_config") if isinstance(state, dict) else None
    if not isinstance(raw, str):
        raise InputError(last, "not an mridiff training checkpoint (no mridiff_config)",
                         "resume only runs started by mridiff train, or choose another --out")
    try:
        stored = json.loads(raw)
        old_model = UNetConfig.from_dict(stored.get("model") or {}).to_dict()
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InputError(last, "the checkpoint's stored config cannot be read",
                         "start a new run with another --out") from None
    new_model = cfg.model.to_dict()
    changed = []
    if stored.get("task") != cfg.task:
        changed.append(f"task {stored.get('task')!r} -> {cfg.task!r}")
    changed += [f"model.{k} {old_model.get(k)!r} -> {new_model.get(k)!r}" for k in sorted(new_model)
                if old_model.get(k) != new_model.get(k)]
    old_diffusion = stored.get("diffusion") or {}
    changed += [f"diffusion.{k} {old_diffusion.get(k)!r} -> {v!r}" for k, v in sorted(vars(cfg.diffusion).items())
                if old_diffusion.get(k) != v]
    if changed:
        raise InputError(last, f"cannot resume: the config differs from the checkpoint's run ({'; '.join(changed)}), "
                         "so the exported model would be mislabelled",
                         "resume with the run's own config, or start a new run with another --out")


def check_not_finished(state: Any, cfg: RunConfig, last: Path) -> None:
    """Refuse to resume a run that already reached its step or time limit, saying which limit to raise.

    Raises:
        InputError: if the checkpoint's global step is at ``max_steps``, or its training time at ``max_minutes``.

    """
    step = int(state.get("global_step") or 0) if isinstance(state, dict) else 0
    if step >= cfg.train.max_steps:
        raise InputError(last, f"the run already reached max_steps ({step} of {cfg.train.max_steps}); "
                         "nothing to resume", f"raise the limit to continue, e.g. --resume --max-steps {2 * step}")
    timer = state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {}) if isinstance(state, dict) else {}
    minutes = float(timer.get("train", 0.0)) / 60.0
    if cfg.train.max_minutes and minutes >= cfg.train.max_minutes:
        raise InputError(last, f"the run already used its max_minutes ({minutes:.1f} of {cfg.train.max_minutes:g} "
                         "min); nothing to resume",
                         f"raise the limit to continue, e.g. --resume --max-minutes {2 * cfg.train.max_minutes:g}")


def check_data(cfg: RunConfig) -> None:
    """Find the training and validation data the way the data module will, before Lightning starts.

    Raises:
        InputError: For a missing folder, file list or image bank, or no matching file.

    """
    data = cfg.data
    if data.images:
        if not Path(data.images).is_file():
            raise InputError(data.images, "image bank not found (data.images)",
                             "make one with `mridiff prepare cheng`")
        try:
            with h5py.File(data.images, "r") as fh:
                bank = isinstance(fh.get("images"), h5py.Dataset)
        except OSError:
            bank = False
        if not bank:
            raise InputError(data.images, "not an image bank (HDF5 with an 'images' dataset)",
                             "make one with `mridiff prepare cheng`")
        if not (data.val_root or data.val_list):
            raise InputError(data.images, "an image bank needs data.val_root for validation")
    else:
        list_files(data.root, data.train_list, data.challenge)
        for extra in data.extra_roots:
            list_files(extra, None, data.challenge)
    if data.val_root or data.val_list:
        list_files(data.val_root or data.root, data.val_list, data.challenge)


def train(cfg: RunConfig, devices: int | str = "auto", num_nodes: int = 1, accelerator: str = "auto",
          resume: bool = False, strategy: str = "auto", progress: bool = True, overwrite: bool = False) -> Path | None:
    """Train a model and export its EMA weights to ``out_dir/model.safetensors``.

    Everything a user can get wrong (an earlier run or model in ``out_dir``, a checkpoint of another run, missing
    data) is checked before Lightning starts, so the error is the only thing printed.

    Args:
        cfg: the validated run configuration.
        devices: devices per node.
        num_nodes: nodes (DDP; launch with torchrun or SLURM).
        accelerator: ``auto``, ``gpu`` or ``cpu``.
        resume: continue from ``out_dir/checkpoints/last.ckpt`` (its config must match ``cfg``).
        strategy: Lightning strategy (``ddp`` by default with several devices).
        progress: show a progress bar.
        overwrite: start a new run in an ``out_dir`` that holds an earlier run or an exported model: the earlier
            ``last.ckpt`` is removed now, the model is replaced at the end.

    Returns:
        The exported model path (on rank 0), else ``None``.

    Raises:
        InputError: see above.

    """
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    last = Path(cfg.out_dir) / "checkpoints" / "last.ckpt"
    exported = Path(cfg.out_dir) / "model.safetensors"
    if resume and not last.is_file():
        raise InputError(last, "no checkpoint to resume from")
    if resume:
        # refuse an unsafe, damaged or foreign checkpoint before anything is built or logged
        state = safe_torch_load(last)
        check_resumable(state, cfg, last)
        check_not_finished(state, cfg, last)
    elif not overwrite and last.is_file():
        raise InputError(last, "a previous run exists in out_dir",
                         "pass --resume to continue it, --overwrite to start over, or choose another --out")
    elif not overwrite and (exported.exists() or exported.is_symlink()):
        raise InputError(exported, "a model exported by an earlier run exists in out_dir and would be replaced",
                         "pass --overwrite to replace it, or choose another --out")
    check_data(cfg)
    check_logger(cfg)
    if overwrite and not resume:
        last.unlink(missing_ok=True)  # the user asked to start over: --resume must not find the old run
    make_example = example_builder(cfg)
    dm = SliceDataModule(cfg, make_example)
    module = DiffusionModule(cfg)
    module.prior_totals = continue_from(module, cfg, load_weights=not resume)
    history = LossHistory()
    validation = PeriodicValidation(cfg.train.val_every)
    callbacks: list[Callback] = [history, validation, FinalCheckpoint(last)]
    trainer = build_trainer(cfg, devices, num_nodes, accelerator, strategy, callbacks, progress)
    start = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None, weights_only=True)
    elapsed = time.time() - start
    timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]  # type: ignore[attr-defined]
    if timers:  # Lightning's timer is restored on --resume, so it counts every invocation of this run
        elapsed = float(timers[0].time_elapsed("train"))
    if not trainer.is_global_zero:
        return None
    image_size = dm.train_set.image_size if dm.train_set else None
    meta = model_meta(cfg, module, trainer.global_step, elapsed, image_size, history.history[-50:])
    meta["training"]["cpu_seconds"] = round(module.cpu_seconds(), 1)
    # on --resume the checkpoint's copy of the totals wins (the init_from file may have been replaced since)
    meta["training"]["totals"] = run_totals(module.prior_totals, trainer.global_step, elapsed, module.cpu_seconds())
    out = export_model(module.ema.module, meta, Path(cfg.out_dir) / "model.safetensors", overwrite=True,
                       half=cfg.train.export_half)
    write_loss_log(history.history, Path(cfg.out_dir), validation.history, title=f"{cfg.task}: {cfg.out_dir}")
    return out


def run_totals(prior: dict[str, Any], steps: int, seconds: float | None, cpu_seconds: float) -> dict[str, Any]:
    """Training totals over every run a model continued from: ``prior`` plus this run's steps and seconds."""
    return {"steps": int(prior.get("steps") or 0) + steps,
            "seconds": round(float(prior.get("seconds") or 0.0) + float(seconds or 0.0), 1),
            "cpu_seconds": round(float(prior.get("cpu_seconds") or 0.0) + cpu_seconds, 1),
            "continued_from": prior.get("sha256")}


def _model_of(meta: dict[str, Any]) -> UNetConfig | None:
    """The network size stored in a model card, or ``None`` when it cannot be read."""
    try:
        return UNetConfig.from_dict(meta.get("model") or {})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def continue_from(module: DiffusionModule, cfg: RunConfig, load_weights: bool) -> dict[str, Any]:
    """Apply ``train.init_from``: load its EMA weights (unless resuming) and return its training totals.

    Raises:
        InputError: if the model is missing, damaged, for another task or of another network size.
    """
    if not cfg.train.init_from:
        return {"steps": 0, "seconds": 0.0}
    weights, meta = load_exported(cfg.train.init_from, expect_task=cfg.task)
    if _model_of(meta) != module.net.config:
        raise InputError(cfg.train.init_from, "train.init_from has another network size than the config's model",
                         "continue with the config the model was trained with")
    if load_weights:
        module.net.load_state_dict(weights)
        module.ema.module.load_state_dict(weights)
    training = meta.get("training", {})
    totals = training.get("totals") or {"steps": training.get("global_step") or 0,
                                        "seconds": training.get("seconds") or 0.0,
                                        "cpu_seconds": training.get("cpu_seconds") or 0.0}
    return {"steps": int(totals["steps"]), "seconds": float(totals["seconds"]),
            "cpu_seconds": float(totals.get("cpu_seconds") or 0.0), "sha256": meta.get("sha256")}


def model_meta(cfg: RunConfig, module: DiffusionModule, global_step: int, seconds: float | None,
               image_size: list[int] | None, loss_tail: list[tuple[int, float]]) -> dict[str, Any]:
    """The JSON card exported beside a model's weights."""
    return {
        "task": cfg.task,
        "model": module.net.config.to_dict(),
        "diffusion": {"timesteps": cfg.diffusion.timesteps, "schedule": cfg.diffusion.schedule,
                      "prediction": cfg.diffusion.prediction},
        "normalisation": {"method": "percentile", "q": 99.0},
        "masks": {"kinds": cfg.masks.kinds, "accelerations": cfg.masks.accelerations,
                  "sr_scales": cfg.masks.sr_scales},
        "training": {"image_size": image_size, "global_step": global_step,
                     "seconds": None if seconds is None else round(seconds, 1),
                     "data_root": cfg.data.images or cfg.data.root,
                     "config": cfg.to_dict(), "loss_tail": loss_tail},
        "domain": training_domain(cfg, image_size),
    }


# With random zoom in [0.8, 1.25] on patches of the full grid, anatomy is seen at scales that a matrix between
# these factors of the training size (same head, other resolution or field of view) reproduces.
MATRIX_RANGE_WITH_GEOMETRY = (0.5, 1.5)


def training_domain(cfg: RunConfig, image_size: list[int] | None) -> dict[str, Any]:
    """What the model was trained on, for the out-of-domain checks at inference.

    ``matrix``: ``[smallest, largest]`` in-plane side that is in the domain (only the training size itself
    without geometric augmentation); ``contrast``: ``"any"`` for a contrast-agnostic (intensity-remapped) prior,
    else ``"T1"``.
    """
    side = max(image_size) if image_size else None
    matrix = None
    if side is not None:
        lo, hi = MATRIX_RANGE_WITH_GEOMETRY if cfg.data.geometry else (1.0, 1.0)
        matrix = [int(side * lo), int(side * hi)]
    return {"matrix": matrix, "contrast": "any" if cfg.data.intensity_remap else "T1"}


def export_checkpoint(ckpt_path: Path, out: Path, overwrite: bool = False) -> Path:
    """Export the EMA weights of a training-state checkpoint (e.g. after a killed run) for inference.

    Raises:
        InputError: if the checkpoint is unreadable or was not written by mridiff.
    """
    from mridiff.config import config_from_dict

    state = safe_torch_load(ckpt_path)
    if "mridiff_config" not in state:
        raise InputError(ckpt_path, "not an mridiff training checkpoint (no mridiff_config)")
    cfg = config_from_dict(json.loads(state["mridiff_config"]), str(ckpt_path))
    module = DiffusionModule(cfg)
    module.load_state_dict(state["state_dict"])
    image_size: list[int] | None = None
    if cfg.data.images and cfg.data.image_size:  # the bank's images are resized to this for training
        image_size = [int(cfg.data.image_size)] * 2
    elif cfg.data.images and Path(cfg.data.images).is_file():
        with h5py.File(cfg.data.images, "r") as fh:
            image_size = [int(v) for v in fh["images"].shape[1:]]
    elif Path(cfg.data.root).is_dir():
        image_size = list(open_scan(list_files(cfg.data.root)[0]).encoded_size)
    timer = state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {})
    seconds = float(timer["train"]) if "train" in timer else None
    meta = model_meta(cfg, module, int(state["global_step"]), seconds, image_size, [])
    if "cpu_seconds" in state:
        meta["training"]["cpu_seconds"] = round(float(state["cpu_seconds"]), 1)
    if "mridiff_prior" in state:
        meta["training"]["totals"] = run_totals(json.loads(state["mridiff_prior"]), int(state["global_step"]),
                                                seconds, float(state.get("cpu_seconds", 0.0)))
    return export_model(module.ema.module, meta, out, overwrite=overwrite, half=cfg.train.export_half)


def write_loss_log(history: list[tuple[int, float]], out_dir: Path,
                   val_history: list[tuple[int, float]] | None = None, title: str | None = None) -> None:
    """Write the loss curve as CSV and PNG (EMA-smoothed, log axis, validation PSNR on a second axis)."""
    from mridiff.io.atomic import atomic_write_text
    from mridiff.io.figures import loss_curve_png

    lines = ["step,loss", *[f"{s},{v:.6g}" for s, v in history]]
    atomic_write_text(out_dir / "loss.csv", "\n".join(lines) + "\n", overwrite=True)
    if history:
        loss_curve_png(history, out_dir / "loss.png", title=title, val_history=val_history)

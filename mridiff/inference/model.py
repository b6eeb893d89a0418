"""Loading an exported model for inference: network, schedule and metadata, checked and safe."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.errors import InputError
from mridiff.io.bundled import DEFAULT_MODELS, default_model_path
from mridiff.io.models import load_exported
from mridiff.models.unet import ConditionalUNet, UNetConfig

__all__ = ["DEFAULT_MODELS", "LoadedModel", "default_model_path", "load_model", "pick_device", "training_summary"]

@dataclass
class LoadedModel:
    """A network ready for sampling, with the schedule it was trained with."""

    net: ConditionalUNet
    schedule: NoiseSchedule
    meta: dict[str, Any]
    path: Path
    device: torch.device


_DEVICE_HINT = "use cpu, cuda or cuda:N"


def _cuda_status() -> tuple[bool, str]:
    """Whether CUDA can be used, and if not why (torch's own warning, e.g. a missing driver, in one short line)."""
    reasons: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            available = bool(torch.cuda.is_available())
        except (RuntimeError, AssertionError) as exc:  # a broken driver can raise here instead of returning False
            available = False
            reasons.append(str(exc))
    if available:
        return True, ""
    if not torch.backends.cuda.is_built():
        return False, "this PyTorch build has no CUDA support"
    reasons += [str(w.message) for w in caught]
    lines = [r.strip().splitlines()[0] for r in reasons if r.strip()]
    return False, (lines[0][:160] if lines else "no CUDA GPU or driver found")


def pick_device(device: str | torch.device | None) -> torch.device:
    """Resolve and check a device: ``None``/``"auto"`` picks CUDA when usable, else the CPU.

    Raises:
        InputError: For a device string torch does not know, a device type mridiff does not run on, CUDA without
            a usable GPU or driver, or a GPU index this machine does not have.

    """
    if device is None or device == "auto":
        return torch.device("cuda" if _cuda_status()[0] else "cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        raise InputError(None, f"device {str(device)!r} is not a device name", _DEVICE_HINT) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        usable, why = _cuda_status()
        if not usable:
            raise InputError(None, f"device {str(device)!r} is not usable: {why}", "use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            which = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise InputError(None, f"device {str(device)!r}: this machine has {count} GPU(s)", f"use {which} or cpu")
        return dev
    if dev.type == "mps" and torch.backends.mps.is_available():
        return dev
    raise InputError(None, f"device {str(device)!r} is not supported by mridiff", _DEVICE_HINT)


def load_model(path: str | os.PathLike[str] | None, task: str, device: str | torch.device | None = None,
               expect_sha256: str | None = None) -> LoadedModel:
    """Load an exported model (or the bundled default for ``task``) for inference.

    Raises:
        InputError: missing or corrupt files, a model for another task, or weights that do not fit the config.

    """
    dev = pick_device(device)  # a wrong --device fails before the weights are read
    p = Path(path) if path is not None else default_model_path(task)
    if path is None and not p.is_file():
        raise InputError(p, f"no bundled {task} model in this installation", "pass --ckpt PATH")
    weights, meta = load_exported(p, expect_sha256=expect_sha256, expect_task=task)
    try:
        net = ConditionalUNet(UNetConfig.from_dict(meta["model"]))
        net.load_state_dict(weights, strict=True)
        schedule = NoiseSchedule(meta["diffusion"]["timesteps"], meta["diffusion"]["schedule"],
                                 meta["diffusion"]["prediction"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        # load_state_dict's first line is only "Error(s) in loading state_dict ..."; show the first real reason.
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        first = (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0] if lines else "")[:200]
        raise InputError(p, f"weights do not match the model config ({first})",
                         "the .json beside the weights belongs to another model; export the model again") from None
    try:
        net.to(dev).eval()
    except (RuntimeError, AssertionError) as exc:  # e.g. a driver that fails on first use, or a GPU that is full
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(None, f"cannot put the model on device '{dev}' ({detail})", "use --device cpu") from None
    return LoadedModel(net=net, schedule=schedule, meta=meta, path=p, device=dev)


def training_summary(meta: dict[str, Any]) -> str:
    """One line on how long an exported model trained, from its metadata (for benchmark reports)."""
    train = meta.get("training", {})
    totals = train.get("totals") or {}  # a run continued with --init-from counts the runs before it
    steps = totals.get("steps", train.get("global_step"))
    cpu = totals.get("cpu_seconds") or train.get("cpu_seconds")
    seconds = totals.get("seconds", train.get("seconds"))
    spent = f" in {cpu / 3600:.2f} CPU-hours" if cpu else (f" in {seconds / 60:.0f} min" if seconds else "")
    return (f"the model trained {steps} steps{spent} (its model card); "
            "a small model trained briefly, not the limit of the method.")

"""Loading an exported model for inference: network, schedule and metadata, checked and safe."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.errors import InputError
from mridiff.models.unet import ConditionalUNet, UNetConfig
from mridiff.training.checkpoint import load_exported

DEFAULT_MODELS: dict[str, str] = {"recon": "recon.safetensors", "sr": "sr_x2.safetensors",
                                  "augment": "augment.safetensors"}


def default_model_path(task: str) -> Path:
    """The bundled model for ``task`` (inside the installed package)."""
    return Path(str(resources.files("mridiff") / "weights" / DEFAULT_MODELS[task]))


@dataclass
class LoadedModel:
    """A network ready for sampling, with the schedule it was trained with."""

    net: ConditionalUNet
    schedule: NoiseSchedule
    meta: dict[str, Any]
    path: Path
    device: torch.device


def pick_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(path: str | os.PathLike[str] | None, task: str, device: str | torch.device | None = None,
               expect_sha256: str | None = None) -> LoadedModel:
    """Load an exported model (or the bundled default for ``task``) for inference.

    Raises:
        InputError: missing or corrupt files, a model for another task, or weights that do not fit the config.

    """
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
    dev = pick_device(device)
    net.to(dev).eval()
    return LoadedModel(net=net, schedule=schedule, meta=meta, path=p, device=dev)


def training_summary(meta: dict[str, Any]) -> str:
    """One line on how long an exported model trained, from its metadata (for benchmark reports)."""
    train = meta.get("training", {})
    seconds = train.get("seconds")
    spent = f" in {seconds / 60:.0f} min" if seconds else ""
    return (f"the model trained {train.get('global_step')} steps{spent} (mridiff/weights/MODEL_CARD.md); "
            "a small model trained briefly, not the limit of the method.")

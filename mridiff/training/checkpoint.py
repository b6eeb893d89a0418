"""Checkpoint I/O that never unpickles arbitrary objects and never leaves half-written files.

Two kinds of file:
- training state (``*.ckpt``): Lightning's dict of tensors and primitives, written atomically and read back
  with ``torch.load(..., weights_only=True)``;
- exported model (``*.safetensors`` + ``*.json`` + ``*.sha256``): EMA weights, config and checksum, for inference.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path
from mridiff.io.models import EXPORT_FORMAT, EXPORT_VERSION, export_model, load_exported, sha256_file

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "SafeCheckpointIO", "export_model", "load_exported", "safe_torch_load",
           "sha256_file"]


def safe_torch_load(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load`` restricted to tensors and primitives; a pickle payload is refused, never run.

    Raises:
        InputError: if the file is missing or holds anything but tensors and primitives.

    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "checkpoint not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message spans many lines (with terminal escapes) and explains how to load the file unsafely;
        # keep only the reason, e.g. "Unsupported global: GLOBAL io.open was not an allowed global by default".
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        reason = next((ln.split("WeightsUnpickler error:", 1)[1] for ln in text.splitlines()
                       if "WeightsUnpickler error:" in ln), text.strip().splitlines()[0] if text.strip() else "")
        reason = reason.strip().split(". ")[0][:160] or type(exc).__name__
        raise InputError(p, f"refused to load checkpoint: it holds objects other than tensors and primitives "
                         f"({reason})", "only load checkpoints written by mridiff") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported in one line
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise InputError(p, f"cannot read checkpoint: truncated or corrupt ({first[:160]})",
                         "resume from an earlier checkpoint or start a new run") from None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes, ``weights_only=True`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write to a temporary file beside ``path`` and rename it into place."""
        with atomic_path(path, overwrite=True) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        """Load with ``weights_only=True`` whatever the caller asks."""
        return safe_torch_load(path, map_location or "cpu")

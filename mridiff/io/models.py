"""Exported models: EMA weights (``.safetensors``), their card (``.json``) and checksum (``.sha256``).

Reading and writing them needs neither Lightning nor pickle, so inference imports only this module (a test keeps
``import mridiff.inference`` free of Lightning, which takes seconds to import).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path, atomic_write_text
from mridiff.io.hashing import sha256_file

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "export_model", "load_exported", "sha256_file"]

EXPORT_FORMAT = "mridiff-model"
EXPORT_VERSION = 1


def export_model(net: torch.nn.Module, meta: dict[str, Any], path: str | os.PathLike[str],
                 overwrite: bool = False, half: bool = False) -> Path:
    """Write ``path`` (.safetensors) with ``net``'s weights, ``path.json`` with ``meta`` and ``path.sha256``.

    Args:
        net: the network whose ``state_dict`` is exported (the EMA copy, for inference).
        meta: JSON-serialisable description: task, model config, diffusion config, normalisation, provenance.
        path: output ``.safetensors`` file.
        overwrite: replace existing files.
        half: store float weights as float16 (half the size; loading casts back to float32).

    Returns:
        The weights path.

    """
    out = Path(path)
    if out.suffix != ".safetensors":
        raise InputError(out, "exported model must end in .safetensors")
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(out, overwrite) as tmp:
        save_file(state, str(tmp))
    digest = sha256_file(out)
    full_meta = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "sha256": digest, **meta}
    atomic_write_text(out.with_suffix(".json"), json.dumps(full_meta, indent=2) + "\n", overwrite=True)
    atomic_write_text(out.with_suffix(".sha256"), f"{digest}  {out.name}\n", overwrite=True)
    return out


def load_exported(path: str | os.PathLike[str], expect_sha256: str | None = None,
                  expect_task: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an exported model's weights and metadata, checking its checksum.

    Args:
        path: the ``.safetensors`` file (its ``.json`` must sit beside it).
        expect_sha256: refuse the file unless its SHA-256 matches.
        expect_task: refuse a model trained for another task.

    Raises:
        InputError: missing files, checksum mismatch, wrong task, or unreadable weights.

    """
    p = Path(path)
    meta_path = p.with_suffix(".json")
    if not p.is_file():
        raise InputError(p, "model file not found")
    try:
        meta = json.loads(meta_path.read_text())
    except OSError:
        raise InputError(meta_path, "model config (.json beside the weights) not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(meta_path, f"model config is not valid JSON ({exc.msg})") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise InputError(meta_path, "not an mridiff model config")
    digest = sha256_file(p)
    wanted = expect_sha256 or meta.get("sha256")
    if wanted and digest != wanted.lower():
        raise InputError(p, f"SHA-256 mismatch: file is {digest[:16]}…, expected {wanted[:16]}…",
                         "the file is corrupt or not the model you meant")
    if expect_task and meta.get("task") != expect_task:
        raise InputError(p, f"model was trained for task '{meta.get('task')}', not '{expect_task}'",
                         f"pass a model exported for '{expect_task}'")
    try:
        weights = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise InputError(p, f"cannot read safetensors weights ({exc})",
                         "pass a .safetensors model exported by mridiff, not a training checkpoint") from None
    return weights, meta

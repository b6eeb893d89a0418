"""``mridiff info``: bundled models, their SHA-256 (checked) and what they were trained on."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def describe_model(task: str, path: Path) -> tuple[list[str], bool]:
    """The ``info`` lines of one exported model, and whether its card and checksum are sound.

    Args:
        task: The task the model should be for (``recon``, ``sr`` or ``augment``).
        path: The ``.safetensors`` file; its ``.json`` card and ``.sha256`` sit beside it.

    Returns:
        The lines to print, and ``True`` when the weights' SHA-256 matches both the card and the ``.sha256`` file
        and the card names ``task``.

    """
    if not path.is_file():
        return [f"{task}: no bundled model ({path.name} missing)"], False
    try:
        meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError):
        return [f"{task}: {path}", f"  model card {path.with_suffix('.json').name} missing or not JSON"], False
    from mridiff.io.hashing import sha256_file

    digest = sha256_file(path)
    sidecar = path.with_suffix(".sha256")
    listed = sidecar.read_text().split()[0] if sidecar.is_file() and sidecar.read_text().strip() else None
    ok = digest == meta.get("sha256") and digest == listed and meta.get("task") == task
    training = meta.get("training", {})
    lines = [f"{task}: {path}", f"  sha256 {digest} ({'ok' if ok else 'MISMATCH'})"]
    if meta.get("task") != task:
        lines.append(f"  the card says task {meta.get('task')!r}, not {task!r}")
    lines.append(f"  image size {training.get('image_size')}, steps {training.get('global_step')}, "
                 f"trained on {training.get('data_root')}")
    domain = meta.get("domain")
    if domain:
        lines.append(f"  domain: matrix {domain.get('matrix')}, contrast {domain.get('contrast')}")
    calibration = meta.get("calibration") or {}
    for key, entry in sorted((calibration.get("table") or {}).items()):
        q = entry.get("quantiles", {})
        lines.append(f"  calibrated {key} ({entry.get('slices')} slices, {calibration.get('sampler')}-"
                     f"{calibration.get('steps')}): q90 {q.get('0.9')}, q95 {q.get('0.95')}")
    if task == "recon" and not calibration:
        lines.append("  uncertainty: not calibrated (mridiff calibrate)")
    return lines, ok


def run(args: argparse.Namespace) -> int:
    """Print one block per bundled model; exit 1 when a bundled model's checksum or card does not match."""
    from mridiff.io.bundled import DEFAULT_MODELS, default_model_path

    status = 0
    for task in DEFAULT_MODELS:
        path = default_model_path(task)
        lines, ok = describe_model(task, path)
        print("\n".join(lines))
        if path.is_file() and not ok:
            status = 1
    return status


def register(sub: Any) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show bundled models and their checksums (exit 1 on a mismatch)")
    p.set_defaults(func=run)

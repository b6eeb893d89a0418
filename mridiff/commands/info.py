"""``mridiff info``: bundled models, their SHA-256 (checked) and what they were trained on."""

from __future__ import annotations

import argparse
import json
from typing import Any


def run(args: argparse.Namespace) -> int:
    """Print one block per bundled model."""
    from mridiff.io.bundled import DEFAULT_MODELS, default_model_path
    from mridiff.io.hashing import sha256_file

    for task in DEFAULT_MODELS:
        path = default_model_path(task)
        if not path.is_file():
            print(f"{task}: no bundled model ({path.name} missing)")
            continue
        meta = json.loads(path.with_suffix(".json").read_text())
        digest = sha256_file(path)
        ok = "ok" if digest == meta.get("sha256") else "MISMATCH"
        training = meta.get("training", {})
        print(f"{task}: {path}")
        print(f"  sha256 {digest} ({ok})")
        print(f"  image size {training.get('image_size')}, steps {training.get('global_step')}, "
              f"trained on {training.get('data_root')}")
        domain = meta.get("domain")
        if domain:
            print(f"  domain: matrix {domain.get('matrix')}, contrast {domain.get('contrast')}")
        calibration = meta.get("calibration") or {}
        for key, entry in sorted((calibration.get("table") or {}).items()):
            q = entry.get("quantiles", {})
            print(f"  calibrated {key} ({entry.get('slices')} slices, {calibration.get('sampler')}-"
                  f"{calibration.get('steps')}): q90 {q.get('0.9')}, q95 {q.get('0.95')}")
        if task == "recon" and not calibration:
            print("  uncertainty: not calibrated (mridiff calibrate)")
    return 0


def register(sub: Any) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show bundled models and their checksums")
    p.set_defaults(func=run)

"""``mridiff calibrate``: a conformal calibration table for a model's uncertainty, from the user's own scans.

Writes a copy of the model (same weights and SHA-256) whose ``.json`` carries the table; ``reconstruct --samples K``
with that model then writes calibrated intervals. Entries of the model's earlier table made with the same sampler,
steps and smoothing are kept unless recalibrated (so modes can be added one run at a time). Use validation scans
only, never the scans you report on.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from mridiff.commands.common import PRESET_CHOICES, SAMPLER_CHOICES, positive_int
from mridiff.errors import InputError


def _files(directories: list[str] | None, limit: int) -> list[Path]:
    """At most ``limit`` HDF5 files from each directory, spread evenly over its sorted names."""
    picked: list[Path] = []
    for directory in directories or []:
        root = Path(directory)
        if not root.is_dir():
            raise InputError(root, "calibration directory not found")
        files = sorted(root.glob("*.h5"))
        if not files:
            raise InputError(root, "no HDF5 files to calibrate on")
        if len(files) > limit:
            step = (len(files) - 1) / max(limit - 1, 1)
            files = [files[round(i * step)] for i in range(limit)]
        picked.extend(files)
    return picked


def merge_calibration(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The new calibration, keeping the entries of the model's earlier table that it does not replace.

    Entries are only comparable when made the same way (sampler, steps, std smoothing); otherwise the new table
    replaces the old one whole.
    """
    same = ("sampler", "steps", "std_smoothing_px")
    if not old or any(old.get(k) != new.get(k) for k in same):
        return new
    merged = dict(new)
    merged["table"] = {**(old.get("table") or {}), **new["table"]}
    merged["files"] = sorted(set(old.get("files") or []) | set(new.get("files") or []))
    return merged


def run(args: argparse.Namespace) -> int:
    """Reconstruct the calibration scans in every requested mode and write the calibrated model copy."""
    from mridiff.inference.calibration import Mode, calibrate_model
    from mridiff.inference.options import preset_options
    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.io.atomic import atomic_path, atomic_write_text, check_writable

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise InputError(out, "output model must end in .safetensors")
    check_writable(out, args.overwrite)
    if not args.data and not args.data_multicoil:
        raise InputError(None, "give --data and/or --data-multicoil: the validation scans to calibrate on")
    if args.samples < 2:
        raise InputError(None, "--samples must be at least 2: one sample has no spread to calibrate")
    files = {False: _files(args.data, args.max_files), True: _files(args.data_multicoil, args.max_files)}
    rec = Reconstructor(args.model, device=args.device)
    modes = [Mode(multicoil, acc, dc, args.samples) for multicoil in (False, True) if files[multicoil]
             for acc in args.accelerations for dc in args.dc]
    try:
        chosen = preset_options(args.preset, sampler=args.sampler, steps=args.steps)
        result = calibrate_model(rec, files, modes, steps=chosen.steps, sampler=chosen.sampler.value, seed=args.seed,
                                 progress=not args.no_progress)
    except ValueError as exc:
        raise InputError((args.data or args.data_multicoil)[0], str(exc)) from None
    meta: dict[str, Any] = dict(rec.model.meta)
    meta["calibration"] = merge_calibration(meta.get("calibration"), result)
    with atomic_path(out, args.overwrite) as tmp:
        shutil.copyfile(rec.model.path, tmp)
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=2) + "\n", overwrite=True)
    atomic_write_text(out.with_suffix(".sha256"), f"{meta.get('sha256')}  {out.name}\n", overwrite=True)
    for key, entry in result["table"].items():
        q = entry["quantiles"]
        print(f"{key}: {entry['slices']} slices, q90 {q.get('0.9', float('nan')):.3f}, "
              f"q95 {q.get('0.95', float('nan')):.3f}")
    print(f"calibrated model: {out}")
    return 0


def register(sub: Any) -> None:
    """Add the ``calibrate`` sub-command."""
    p = sub.add_parser("calibrate", help="conformal calibration of the uncertainty of a recon model")
    p.add_argument("--ckpt", "--model", dest="model",
                   help="exported recon model (.safetensors); the bundled one if omitted")
    p.add_argument("--data", nargs="+",
                   help="directories of fully sampled single-coil validation files; each matrix size found gets a "
                        "calibration entry of its own (this and/or --data-multicoil)")
    p.add_argument("--data-multicoil", nargs="+", help="directories of fully sampled multi-coil validation files")
    p.add_argument("--out", required=True, help="calibrated copy of the model (.safetensors)")
    p.add_argument("--accelerations", type=positive_int, nargs="+", default=[4, 8])
    p.add_argument("--dc", nargs="+", choices=["hard", "soft", "cg"], default=["hard", "soft"])
    p.add_argument("--samples", type=positive_int, default=4, help="K samples per slice (the mode's K)")
    p.add_argument("--preset", choices=list(PRESET_CHOICES), default="balanced",
                   help="the sampling preset to calibrate (its sampler and steps; reconstructions with another "
                        "sampler or step count are told that the calibration was made for this one)")
    p.add_argument("--sampler", choices=list(SAMPLER_CHOICES), default=None, help="override the preset's sampler")
    p.add_argument("--steps", type=positive_int, default=None, help="override the preset's steps")
    p.add_argument("--max-files", type=positive_int, default=16,
                   help="at most this many files per directory (spread evenly over the sorted names)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

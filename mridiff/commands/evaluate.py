"""``mridiff evaluate --target-path DIR --predictions-path DIR``: fastMRI's evaluation, working with NumPy 2."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mridiff.commands.common import positive_int


def run(args: argparse.Namespace) -> int:
    """Evaluate the predictions volume by volume and print fastMRI's summary line."""
    from mridiff.evaluation import evaluate
    from mridiff.io.atomic import check_writable
    from mridiff.io.outputs import write_json

    if args.json:
        check_writable(args.json, args.overwrite)  # before any work
    result = evaluate(args.target_path, args.predictions_path, args.challenge, args.acquisition, args.acceleration)
    keys = sorted({v.target_key for v in result.volumes})
    skipped = f"; {len(result.skipped)} left out by the filters" if result.skipped else ""
    print(f"{len(result.volumes)} volume(s) evaluated against {', '.join(keys)}{skipped} (mean +/- 2 sd):")
    print(result.report())
    if args.json:
        write_json(args.json, result.to_dict(), overwrite=args.overwrite)
        print(f"per-volume metrics in {args.json}")
    return 0


def register(sub: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = sub.add_parser("evaluate", help="fastMRI's volume-wise evaluation (as fastmri/evaluate.py, with NumPy 2)",
                       description="Evaluate submission files against fully sampled targets with fastMRI's metrics "
                                   "(MSE, NMSE, PSNR, SSIM per volume; mean +/- 2 sd over volumes), exactly as "
                                   "fastmri/evaluate.py computes them; `python -m fastmri.evaluate` crashes with "
                                   "NumPy 2 when it prints its results.")
    p.add_argument("--target-path", type=Path, required=True,
                   help="folder of fully sampled .h5 files (reconstruction_rss / reconstruction_esc)")
    p.add_argument("--predictions-path", type=Path, required=True,
                   help="folder of submission .h5 files with the same names (a 'reconstruction' dataset)")
    p.add_argument("--challenge", choices=["singlecoil", "multicoil"],
                   help="which target: reconstruction_esc (singlecoil) or reconstruction_rss (multicoil); default: "
                        "from each file's k-space layout")
    p.add_argument("--acquisition", help="only volumes whose 'acquisition' attribute is this (e.g. AXT1)")
    p.add_argument("--acceleration", type=positive_int, help="only volumes whose 'acceleration' attribute is this")
    p.add_argument("--json", type=Path, help="also write the per-volume metrics and the summary to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)

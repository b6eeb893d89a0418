"""``mridiff demo``: simulate a scan from the bundled real test slices and reconstruct it with the bundled model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mridiff.commands.common import DC_CHOICES, PRESET_CHOICES, SAMPLER_CHOICES, positive_int


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its table."""
    from mridiff.errors import InputError
    from mridiff.workflows.demo import DemoOptions, describe, format_table, load_demo_data, run_demo

    opts = DemoOptions(out=Path(args.out), preset=args.preset, steps=args.steps, sampler=args.sampler, dc=args.dc,
                       samples=args.samples, ckpt=args.ckpt, overwrite=args.overwrite, progress=not args.no_progress,
                       seed=args.seed)
    try:
        opts.sampling()
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    data = load_demo_data()
    print("\n".join(describe(opts, data)), flush=True)  # what runs, before the minute or two it takes
    rows = run_demo(opts)
    print(format_table(rows, f"results ({data.label}):"))
    print(f"outputs (fastMRI submission HDF5, NIfTI, PNG, metrics.json) in {opts.out}/")
    return 0


def register(sub: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser("demo", help="reconstruct real test slices (simulated k-space) at 4x and 8x with the bundled "
                                    "model")
    p.add_argument("--out", default="mridiff-demo", help="output directory")
    p.add_argument("--preset", choices=list(PRESET_CHOICES), default="balanced",
                   help="speed/quality trade-off, as for `mridiff reconstruct` (default: balanced)")
    p.add_argument("--steps", type=positive_int, default=None, help="network calls per sample (default: the preset's)")
    p.add_argument("--sampler", choices=list(SAMPLER_CHOICES), default=None, help="default: the preset's")
    p.add_argument("--dc", choices=list(DC_CHOICES), default=None, help="data consistency (default: the preset's)")
    p.add_argument("--samples", type=positive_int, default=2, help="K samples for mean and std")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--ckpt", help="use this exported model instead of the bundled one")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo's outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

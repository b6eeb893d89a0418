"""``mridiff demo``: simulate a scan from the bundled test slices and reconstruct it with the bundled model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mridiff.commands.common import DC_CHOICES, positive_int


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its table."""
    from mridiff.workflows.demo import DemoOptions, format_table, run_demo

    opts = DemoOptions(out=Path(args.out), steps=args.steps, samples=args.samples, ckpt=args.ckpt,
                       overwrite=args.overwrite, progress=not args.no_progress, seed=args.seed, dc=args.dc)
    rows = run_demo(opts)
    print("mridiff demo: Colin27 (held-out subject), simulated 8-coil k-space, 128x128, "
          f"DDIM-{opts.steps} + {opts.dc} data consistency, K={opts.samples} samples")
    print(format_table(rows))
    print(f"outputs (fastMRI submission HDF5, NIfTI, PNG, metrics.json) in {opts.out}/")
    return 0


def register(sub: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser("demo", help="reconstruct a bundled sample scan at 4x and 8x with the bundled model")
    p.add_argument("--out", default="mridiff-demo", help="output directory")
    p.add_argument("--steps", type=positive_int, default=20, help="DDIM steps")
    p.add_argument("--samples", type=positive_int, default=2, help="K samples for mean and std")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--dc", choices=list(DC_CHOICES), default="soft",
                   help="data consistency (default soft: the demo scan has 30 dB noise)")
    p.add_argument("--ckpt", help="use this exported model instead of the bundled one")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo's outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

"""``mridiff audit-samples DIR --train DATA``: flag generated samples that copy a training slice."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mridiff.commands.common import positive_int


def run(args: argparse.Namespace) -> int:
    """Audit the samples in DIR against the training data; write audit.csv and audit.png."""
    from mridiff.workflows.audit import AUDIT_SIZE, L2_THRESHOLD, SSIM_THRESHOLD, audit_dir, memorisation_rate

    ssim_t = SSIM_THRESHOLD if args.threshold is None else args.threshold
    l2_t = L2_THRESHOLD if args.l2_threshold is None else args.l2_threshold
    rows, outs = audit_dir(Path(args.samples), [Path(p) for p in args.train],
                           Path(args.out) if args.out else None, ssim_t, l2_t, args.size or AUDIT_SIZE,
                           args.overwrite)
    flagged = [r for r in rows if r.flagged]
    print(f"{len(flagged)} of {len(rows)} sample(s) flagged ({100 * memorisation_rate(rows):.1f}%; "
          f"SSIM >= {ssim_t} or normalised L2 <= {l2_t})")
    for r in flagged:
        print(f"  {r.sample}: SSIM {r.ssim:.3f} with {r.nearest_ssim}; L2 {r.l2:.3f} with {r.nearest_l2}")
    print(f"wrote {outs['csv']} and {outs['png']}")
    return 0


def register(sub: Any) -> None:
    """Add the ``audit-samples`` sub-command."""
    # Defaults live in mridiff.workflows.audit, imported only when the command runs (keeps `mridiff -h` fast).
    p = sub.add_parser("audit-samples", help="find generated samples that copy a training slice")
    p.add_argument("samples", help="directory written by `mridiff augment`")
    p.add_argument("--train", nargs="+", required=True, help="training .h5 / NIfTI files or directories")
    p.add_argument("--threshold", type=float, help="flag at nearest SSIM >= this (default 0.95)")
    p.add_argument("--l2-threshold", type=float, help="flag at normalised L2 <= this (default 0.10)")
    p.add_argument("--size", type=positive_int, help="images are compared at size x size (default 64)")
    p.add_argument("--out", help="where audit.csv / audit.png go (default: the sample directory)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier audit.csv / audit.png")
    p.set_defaults(func=run)

"""``mridiff augment --n 500 --out DIR``: synthetic slices from the augmentation model, restartable.

Samples go to ``DIR/samples/`` and are listed in ``DIR/manifest.csv``. ``--n`` is the target total: rerunning into
the same directory continues where it stopped and never rewrites a finished sample. ``--with-kspace`` writes
fastMRI-layout HDF5 with simulated k-space (``fastmri.data.SliceDataset(DIR / "samples", ...)`` reads it), so the
synthetic set can train reconstruction models directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mridiff.commands.common import positive_int


def run(args: argparse.Namespace) -> int:
    """Generate samples into ``--out`` and print a summary."""
    from mridiff.inference.generate import AugmentOptions, SampleGenerator, augment_dir

    if not args.with_kspace and (args.coils is not None or args.acceleration is not None):
        from mridiff.errors import InputError

        raise InputError(None, "--coils and --acceleration only apply with --with-kspace")
    fmt = args.format or ("h5" if args.with_kspace else "nifti")
    opts = AugmentOptions(n=args.n, steps=args.steps, batch=args.batch, seed=args.seed, fmt=fmt,
                          with_kspace=args.with_kspace, coils=args.coils or 8, acceleration=args.acceleration,
                          snr_db=args.snr_db, progress=not args.no_progress)
    opts.validate()  # before the model loads: bad flags fail fast
    gen = SampleGenerator(args.ckpt, device=args.device, expect_sha256=args.expect_sha256)
    summary = augment_dir(Path(args.out), gen, opts)
    print(f"{summary['written']} new sample(s), {summary['kept']} kept; {summary['total']} in {args.out} "
          f"(manifest {summary['manifest']})")
    return 0


def register(sub: Any) -> None:
    """Add the ``augment`` sub-command."""
    p = sub.add_parser("augment", help="generate synthetic slices for data augmentation")
    p.add_argument("--n", type=positive_int, required=True, help="target total number of samples in --out")
    p.add_argument("--out", required=True, help="output directory (rerun to continue)")
    p.add_argument("--ckpt", help="exported augmentation model (.safetensors); default: the bundled model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (eta = 0)")
    p.add_argument("--batch", type=positive_int, default=8, help="samples per batch")
    p.add_argument("--seed", type=int, default=0, help="base seed; sample i uses a seed derived from (seed, i)")
    p.add_argument("--format", choices=["nifti", "h5", "png"], help="file format (default nifti; h5 with k-space)")
    p.add_argument("--with-kspace", action="store_true", help="fastMRI-layout HDF5 with simulated k-space")
    p.add_argument("--coils", type=positive_int, help="simulated coils for --with-kspace (default 8; 1 = single)")
    p.add_argument("--acceleration", type=int, choices=[2, 3, 4, 5, 6, 8, 10, 12, 16],
                   help="also store a seeded 1D 'sampling_mask' at this acceleration (k-space stays full)")
    p.add_argument("--snr-db", type=float, default=30.0, help="SNR of the simulated k-space noise")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

"""``mridiff augment --n 500 --out DIR``: synthetic slices from the augmentation model, restartable.

The work is :mod:`mridiff.workflows.augment` (also under ``torchrun``: disjoint sample indices per rank); the
inference log goes to ``DIR/augment.log`` and the first samples to ``DIR/contact_sheet.png``.

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
    """Generate samples into ``--out`` (this rank's share under ``torchrun``) and print a summary."""
    import contextlib

    from mridiff.inference.generate import SampleGenerator
    from mridiff.inference.provenance import run_provenance
    from mridiff.workflows.augment import augment_dir
    from mridiff.workflows.common import InferenceLog, log_name
    from mridiff.workflows.distributed import process_group, rank_device, torchrun_rank
    from mridiff.workflows.samples import AugmentOptions

    if not args.with_kspace and (args.coils is not None or args.acceleration is not None):
        from mridiff.errors import InputError

        raise InputError(None, "--coils and --acceleration only apply with --with-kspace")
    rank = torchrun_rank()
    fmt = args.format or ("h5" if args.with_kspace else "nifti")
    opts = AugmentOptions(n=args.n, steps=args.steps, batch=args.batch, seed=args.seed, fmt=fmt,
                          with_kspace=args.with_kspace, coils=args.coils or 8, acceleration=args.acceleration,
                          snr_db=args.snr_db, progress=not args.no_progress)
    opts.validate()  # before the model loads: bad flags fail fast
    device = args.device if rank is None else rank_device(rank, args.device)
    gen = SampleGenerator(args.ckpt, device=device, expect_sha256=args.expect_sha256)
    out = Path(args.out)
    settings = {"options": vars(opts), "provenance": run_provenance(gen.model),
                "rank": None if rank is None else vars(rank)}
    log = InferenceLog(out / log_name("augment", 0 if rank is None else rank.rank), "augment", settings)
    with process_group(rank, gen.model.device) if rank is not None else contextlib.nullcontext(), log:
        summary = augment_dir(out, gen, opts, rank=rank, on_written=log.keep)
        if rank is None or rank.is_main:
            log.keep()
        if rank is not None:
            print(f"rank {rank.rank}/{rank.world_size}: {summary['written']} new sample(s), {summary['kept']} kept")
        if rank is None or rank.is_main:
            print(f"{summary['written']} new sample(s), {summary['kept']} kept; {summary['total']} in {args.out} "
                  f"(manifest {summary['manifest']}, contact sheet {summary['contact_sheet']})")
    return 0


def register(sub: Any) -> None:
    """Add the ``augment`` sub-command."""
    p = sub.add_parser("augment", help="generate synthetic slices for data augmentation")
    p.add_argument("--n", "--count", dest="n", type=positive_int, required=True,
                   help="target total number of samples in --out (spell it --count after torchrun, whose own parser "
                        "takes --n for an abbreviation of its options)")
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

"""``mridiff reconstruct scan.h5 [dir ...]``: every file is attempted; bad files are reported at the end.

The work is :mod:`mridiff.workflows.recon_dir` (staged, all-or-nothing outputs per file; finished files skipped on
a rerun; ``torchrun`` for many processes); this module parses the flags, loads the model, keeps the inference log
(``OUT/reconstruct.log``) and prints the summary. The exit status is non-zero at the end when a file failed (2
when every failure was a bad input, 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from mridiff.commands.common import (
    EXIT_USER_ERROR,
    MASK_CHOICES,
    SENS_CHOICES,
    add_sampling_args,
    sampling_options,
    slices_arg,
)


def _note(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"mridiff: note: {line}".replace("\n", " "), file=sys.stderr)  # never spliced into a progress bar


def _print_summary(results: list[dict[str, Any]], out_dir: Path) -> None:
    from mridiff.inference.provenance import aggregate

    for r in results:
        line = f"{r['file']}: {r['seconds_per_slice']:.2f} s/slice, NFE {r['nfe']}"
        if "mridiff" in r:
            m, z = r["mridiff"], r["zero_filled"]
            line += f", PSNR {m['PSNR']:.2f} dB (zero-filled {z['PSNR']:.2f}), SSIM {m['SSIM']:.4f}"
            line += f" (zero-filled {z['SSIM']:.4f})"
        print(line)
    summary = aggregate(results).get("mridiff", {})
    if summary.get("PSNR", {}).get("n", 0) > 1:
        psnr, ssim = summary["PSNR"], summary["SSIM"]
        print(f"mean over {psnr['n']} files (+/- sd): PSNR {psnr['mean']:.2f} +/- {psnr['sd']:.2f} dB, "
              f"SSIM {ssim['mean']:.4f} +/- {ssim['sd']:.4f} (all files of --out: metrics.json 'aggregate')")
    print(f"outputs in {out_dir}")


def run(args: argparse.Namespace) -> int:
    """Reconstruct the inputs; write submission HDF5, NIfTI, PNG, metrics.json and reconstruct.log under ``--out``.

    Each file's outputs are written into a staging folder inside ``--out`` and moved into place together with its
    ``metrics.json`` entry (see :mod:`mridiff.io.staging`), so a run killed at any moment (SIGKILL included) is
    finished by running the same command again, without ``--overwrite``. SIGTERM stops the run like Ctrl-C, with
    the temporary files removed. Under ``torchrun`` every rank does its share of the files.
    """
    from mridiff.inference.provenance import run_provenance
    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.physics.masks import MaskSpec
    from mridiff.workflows.common import InferenceLog, log_name
    from mridiff.workflows.distributed import process_group, rank_device, torchrun_rank
    from mridiff.workflows.metrics_log import MetricsLog
    from mridiff.workflows.recon import ReconOptions, collect_inputs
    from mridiff.workflows.recon_dir import reconstruct_dir

    rank = torchrun_rank()
    files = collect_inputs([Path(p) for p in args.inputs])
    out_dir = Path(args.out)
    chosen = sampling_options(args)  # the preset, with --sampler/--steps/--dc overriding its parts
    opts = ReconOptions(coverage=args.coverage, steps=chosen.steps, sampler=chosen.sampler.value, dc=chosen.dc.value,
                        cg_iters=chosen.cg_iters, samples=args.samples, seed=args.seed,
                        batch_size=args.batch_size, acceleration=args.acceleration,
                        center_fraction=args.center_fraction, mask_type=args.mask_type,
                        sens_method=args.sens_method, noise_std=args.noise_std, overwrite=args.overwrite,
                        progress=not args.no_progress, slices=None if args.slices is None else str(args.slices))
    options = {**vars(opts), "center_fraction": MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)
               .fraction, "retrospective_mask_options": "acceleration, center_fraction and mask_type apply to fully "
               "sampled files only; a file's own mask is used as it is (see each file's 'mask')"}
    opts.sampling()  # bad sampling flags fail before the model loads
    log = MetricsLog(out_dir / "metrics.json", options, opts.overwrite,  # refuses a foreign file up front
                     rank=None if rank is None else rank.rank)
    device = args.device if rank is None else rank_device(rank, args.device)
    rec = Reconstructor(args.ckpt, device=device, expect_sha256=args.expect_sha256)
    opts.sampling().make_sampler(rec.model.schedule)  # e.g. --steps with --sampler ddpm fails once, not per file
    log.provenance = run_provenance(rec.model)
    many = len(files) > 1 or any(Path(p).is_dir() for p in args.inputs)
    settings = {"options": options, "provenance": log.provenance, "inputs": [str(f) for f in files],
                "rank": None if rank is None else vars(rank)}
    inference_log = InferenceLog(out_dir / log_name("reconstruct", 0 if rank is None else rank.rank),
                                 "reconstruct", settings)
    with process_group(rank, rec.model.device) if rank is not None else contextlib.nullcontext(), inference_log:
        done = reconstruct_dir(files, out_dir, rec, opts, log, many=many, rank=rank, note=_note,
                               on_finished=lambda _: inference_log.keep())
        if done.results:
            _print_summary(done.results, out_dir)
        if done.skipped:
            print(f"skipped {len(done.skipped)} file(s) with existing outputs (use --overwrite to redo)")
        if rank is not None and rank.is_main:
            failed = sum(n for n, _ in done.rank_failures)
            print(f"{rank.world_size} ranks finished; metrics.json holds every rank's files"
                  + (f"; {failed} file(s) failed" if failed else ""))
        if done.failures:
            print(f"mridiff: {len(done.failures)} file(s) failed:", file=sys.stderr)
            for f in done.failures:
                print(f"  {f}", file=sys.stderr)
    crashed = done.crashed or any(c for _, c in done.rank_failures)
    failed = bool(done.failures) or any(n for n, _ in done.rank_failures)
    if failed:
        return 1 if crashed else EXIT_USER_ERROR
    return 0


def register(sub: Any) -> None:
    """Add the ``reconstruct`` sub-command."""
    p = sub.add_parser("reconstruct", help="reconstruct fastMRI HDF5 scans")
    p.add_argument("inputs", nargs="+", help="scan files or directories of .h5 files")
    p.add_argument("--ckpt", help="exported model (.safetensors); default: the bundled model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    add_sampling_args(p)
    p.add_argument("--coverage", type=float, default=0.9,
                   help="nominal coverage of the calibrated interval written with K > 1 (a level in the model's "
                        "calibration table: 0.5-0.99)")
    p.add_argument("--acceleration", type=int, choices=[2, 3, 4, 5, 6, 8, 10, 12, 16], default=4,
                   help="fully sampled files only: retrospective undersampling factor (a file's own mask is used "
                        "as it is)")
    p.add_argument("--center-fraction", type=float,
                   help="fully sampled centre of the retrospective mask (default: fastMRI's, 0.08 at 4x, 0.04 at 8x)")
    p.add_argument("--mask-type", default="random", choices=list(MASK_CHOICES),
                   help="retrospective mask kind (1D fastMRI kinds, or 2D poisson / gaussian2d)")
    p.add_argument("--sens-method", choices=list(SENS_CHOICES), default="espirit",
                   help="coil maps: ESPIRiT (JSENSE when fewer than 12 calibration lines), JSENSE or low-resolution")
    p.add_argument("--noise-std", type=float, help="k-space noise std for --dc soft (default: estimated)")
    p.add_argument("--slices", type=slices_arg, metavar="A:B",
                   help="reconstruct slices A to B-1 of each file (0-based; A: or :B leave an end open); the outputs "
                        "hold those slices only")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when usable, else cpu)")
    p.add_argument("--out", default="mridiff-out", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (and their metrics entries)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

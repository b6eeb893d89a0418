"""``mridiff reconstruct scan.h5 [dir ...]``: every file is attempted; bad files are reported at the end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mridiff.commands.common import EXIT_USER_ERROR, positive_int
from mridiff.errors import InputError
from mridiff.physics.coils import SENS_METHODS
from mridiff.physics.masks import MASK_KINDS


def run(args: argparse.Namespace) -> int:
    """Reconstruct the inputs; write submission HDF5, NIfTI, PNG and metrics.json under ``--out``."""
    from mridiff.inference.recon_files import ReconOptions, collect_inputs, output_paths, reconstruct_file
    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.io.outputs import write_json

    files = collect_inputs([Path(p) for p in args.inputs])
    out_dir = Path(args.out)
    opts = ReconOptions(steps=args.steps, sampler=args.sampler, dc=args.dc, samples=args.samples, seed=args.seed,
                        batch_size=args.batch_size, acceleration=args.acceleration,
                        center_fraction=args.center_fraction, mask_type=args.mask_type,
                        sens_method=args.sens_method, noise_std=args.noise_std, overwrite=args.overwrite,
                        progress=not args.no_progress)
    rec = Reconstructor(args.ckpt, device=args.device, expect_sha256=args.expect_sha256)
    many = len(files) > 1 or any(Path(p).is_dir() for p in args.inputs)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    skipped: list[Path] = []
    for path in files:
        if many and not opts.overwrite and output_paths(path, out_dir)["h5"].exists():
            skipped.append(path)
            continue
        try:
            results.append(reconstruct_file(path, out_dir, rec, opts))
        except InputError as exc:
            if not many:
                raise
            failures.append(exc.message())
            print(f"mridiff: error: {exc.message()}", file=sys.stderr)
    if results:
        write_json(out_dir / "metrics.json", {"files": results, "options": vars(opts)}, overwrite=True)
        for r in results:
            line = f"{r['file']}: {r['seconds_per_slice']:.2f} s/slice, NFE {r['nfe']}"
            if "mridiff" in r:
                m, z = r["mridiff"], r["zero_filled"]
                line += f", PSNR {m['PSNR']:.2f} dB (zero-filled {z['PSNR']:.2f}), SSIM {m['SSIM']:.4f}"
                line += f" (zero-filled {z['SSIM']:.4f})"
            print(line)
        print(f"outputs in {out_dir}")
    if skipped:
        print(f"skipped {len(skipped)} file(s) with existing outputs (use --overwrite to redo)")
    if failures:
        print(f"mridiff: {len(failures)} file(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def register(sub: Any) -> None:
    """Add the ``reconstruct`` sub-command."""
    p = sub.add_parser("reconstruct", help="reconstruct fastMRI HDF5 scans")
    p.add_argument("inputs", nargs="+", help="scan files or directories of .h5 files")
    p.add_argument("--ckpt", help="exported model (.safetensors); default: the bundled model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    p.add_argument("--steps", type=positive_int, default=50)
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    p.add_argument("--dc", choices=["hard", "cg", "soft", "none"], default="hard")
    p.add_argument("--samples", type=positive_int, default=1, help="K samples for mean and std")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=4, help="slices per batch")
    p.add_argument("--acceleration", type=int, choices=[2, 3, 4, 5, 6, 8, 10, 12, 16], default=4)
    p.add_argument("--center-fraction", type=float)
    p.add_argument("--mask-type", default="random", choices=list(MASK_KINDS))
    p.add_argument("--sens-method", choices=list(SENS_METHODS), default="espirit",
                   help="coil maps: ESPIRiT (JSENSE when fewer than 12 calibration lines), JSENSE or low-resolution")
    p.add_argument("--noise-std", type=float, help="k-space noise std for --dc soft (default: estimated)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--out", default="mridiff-out")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

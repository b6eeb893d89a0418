"""``mridiff superres IN --scale 2 --out OUT.nii.gz``: a low-resolution volume in, a super-resolved NIfTI out.

The work is :mod:`mridiff.workflows.superres` (NIfTI or fastMRI input, the output's affine, ``--from-highres``,
``--reference``, ``--slices``, padding of sizes the scale does not divide); beside the output go its PNG panel,
an entry in ``metrics.json`` and the inference log ``superres.log``. This module parses the flags and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mridiff.commands.common import add_sampling_args, sampling_options, slices_arg


def _note(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"mridiff: note: {line}".replace("\n", " "), file=sys.stderr)  # never spliced into a progress bar


def run(args: argparse.Namespace) -> int:
    """Super-resolve one input and print where the outputs went."""
    from mridiff.workflows.common import InferenceLog, log_name
    from mridiff.workflows.superres import SR_METHODS, SRFileOptions, superres_file

    chosen = sampling_options(args, dc="hard")  # the preset, with --sampler/--steps overriding its parts
    opts = SRFileOptions(scale=args.scale, axis=args.axis, lr_model=args.lr_model, steps=chosen.steps,
                         sampler=chosen.sampler.value, samples=args.samples, seed=args.seed, batch_size=args.batch_size,
                         volume=args.volume, from_highres=args.from_highres, overwrite=args.overwrite,
                         progress=not args.no_progress, slices=args.slices, reference=args.reference,
                         cg_iters=chosen.cg_iters)
    out = Path(args.out)
    settings = {"input": args.input, "out": args.out, "options": vars(opts), "ckpt": args.ckpt, "device": args.device}
    with InferenceLog(out.parent / log_name("superres"), "superres", settings) as log:
        summary = superres_file(Path(args.input), out, opts, args.ckpt, args.device, args.expect_sha256, note=_note)
        log.keep()
        print(f"x{opts.scale} super-resolution: {summary['seconds_per_slice']:.2f} s/slice, NFE {summary['nfe']}")
        for name in SR_METHODS:
            if name in summary:
                m = summary[name]
                print(f"  {name:8s} PSNR {m['PSNR']:.2f} dB  SSIM {m['SSIM']:.4f}  NMSE {m['NMSE']:.4f}")
        print("wrote " + ", ".join(summary["outputs"].values()) + f"; metrics in {out.parent / 'metrics.json'}")
    return 0


def register(sub: Any) -> None:
    """Add the ``superres`` sub-command."""
    p = sub.add_parser("superres", help="super-resolve a low-resolution NIfTI volume or fastMRI scan")
    p.add_argument("input", help="low-resolution .nii/.nii.gz volume or fastMRI .h5 scan")
    p.add_argument("--scale", type=int, choices=[2, 4], default=2, help="in-plane upsampling factor")
    p.add_argument("--axis", type=int, choices=[0, 1, 2], default=2, help="NIfTI slice axis (ignored for .h5)")
    p.add_argument("--lr-model", choices=["kspace", "image"], default="kspace",
                   help="low resolution = centre of k-space (MRI) or block means (other images)")
    p.add_argument("--ckpt", help="exported SR model (.safetensors); default: the bundled x2 model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    add_sampling_args(p, dc=None)
    p.add_argument("--volume", type=int, help="volume index of a 4D NIfTI")
    p.add_argument("--from-highres", action="store_true",
                   help="input is high-resolution: simulate its low resolution and report PSNR/SSIM")
    p.add_argument("--reference", help="high-resolution NIfTI on the output's grid: report PSNR/SSIM against it")
    p.add_argument("--slices", type=slices_arg, metavar="A:B",
                   help="super-resolve slices A to B-1 along the slice axis (0-based; A: or :B leave an end open)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--out", required=True,
                   help="output .nii.gz (its panel, metrics.json and superres.log go beside it)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

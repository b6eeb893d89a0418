"""The ``mridiff`` command: thin sub-commands over the Python API.

User errors (bad files, bad flags, existing outputs) print one line on stderr and exit with status 2;
there is no traceback for them. Warnings print as one line each.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mridiff.errors import InputError

EXIT_USER_ERROR = 2


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    print(f"mridiff: warning: {str(message).splitlines()[0]}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other user error."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise InputError(None, f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    """``mridiff train``."""
    from mridiff.config import load_config
    from mridiff.training.run import train

    cfg = load_config(args.config)
    if args.task and args.task != cfg.task:
        raise InputError(args.config, f"config is for task '{cfg.task}' but --task {args.task} was given")
    if args.data:
        cfg.data.root = args.data
    if args.out:
        cfg.out_dir = args.out
    if args.max_steps:
        cfg.train.max_steps = args.max_steps
    if args.max_minutes:
        cfg.train.max_minutes = args.max_minutes
    out = train(cfg, devices=args.devices, num_nodes=args.num_nodes, accelerator=args.accelerator,
                resume=args.resume, progress=not args.no_progress)
    if out is not None:
        print(f"exported model: {out}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """``mridiff reconstruct``: every file is attempted; bad files are reported at the end."""
    from mridiff.inference.recon_files import ReconOptions, collect_inputs, reconstruct_file
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
    results, failures, skipped = [], [], []
    for path in files:
        from mridiff.inference.recon_files import output_paths

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


def cmd_info(args: argparse.Namespace) -> int:
    """``mridiff info``: bundled models, their SHA-256 and what they were trained on."""
    import json

    from mridiff.inference.model import DEFAULT_MODELS, default_model_path
    from mridiff.training.checkpoint import sha256_file

    for task, _ in DEFAULT_MODELS.items():
        path = default_model_path(task)
        if not path.is_file():
            print(f"{task}: no bundled model ({path.name} missing)")
            continue
        meta = json.loads(path.with_suffix(".json").read_text())
        digest = sha256_file(path)
        ok = "ok" if digest == meta.get("sha256") else "MISMATCH"
        steps = meta.get("training", {}).get("global_step")
        print(f"{task}: {path}\n  sha256 {digest} ({ok})\n  steps {steps}, image size "
              f"{meta.get('training', {}).get('image_size')}, data {meta.get('data_description', 'see model card')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = _Parser(prog="mridiff", description="Conditional diffusion models for MRI.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--task", choices=["recon", "sr", "augment"])
    p.add_argument("-c", "--config", required=True, help="YAML run config (see configs/)")
    p.add_argument("--data", help="override data.root")
    p.add_argument("--out", help="override out_dir")
    p.add_argument("--devices", default="auto", help="devices per node (int or 'auto')")
    p.add_argument("--num-nodes", type=_positive_int, default=1)
    p.add_argument("--accelerator", default="auto", choices=["auto", "gpu", "cpu"])
    p.add_argument("--max-steps", type=_positive_int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoints/last.ckpt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reconstruct", help="reconstruct fastMRI HDF5 scans")
    p.add_argument("inputs", nargs="+", help="scan files or directories of .h5 files")
    p.add_argument("--ckpt", help="exported model (.safetensors); default: the bundled model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    p.add_argument("--dc", choices=["hard", "cg", "soft", "none"], default="hard")
    p.add_argument("--samples", type=_positive_int, default=1, help="K samples for mean and std")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=4, help="slices per batch")
    p.add_argument("--acceleration", type=int, choices=[2, 3, 4, 5, 6, 8, 10, 12, 16], default=4)
    p.add_argument("--center-fraction", type=float)
    p.add_argument("--mask-type", default="random",
                   choices=["random", "equispaced", "equispaced_fraction", "magic", "magic_fraction", "poisson",
                            "gaussian2d"])
    p.add_argument("--sens-method", choices=["espirit", "lowres"], default="espirit")
    p.add_argument("--noise-std", type=float, help="k-space noise std for --dc soft (default: estimated)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--out", default="mridiff-out")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("info", help="show bundled models and their checksums")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    warnings.showwarning = _one_line_warning
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric|torch")
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except InputError as exc:
        print(f"mridiff: error: {exc.message()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("mridiff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

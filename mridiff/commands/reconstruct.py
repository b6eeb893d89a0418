"""``mridiff reconstruct scan.h5 [dir ...]``: every file is attempted; bad files are reported at the end.

With several inputs (or a directory) a file that fails, for a bad input or any other reason, is reported and the
run goes on with the next one; the exit status is non-zero at the end (2 when every failure was a bad input, 1
otherwise). ``metrics.json`` is updated after every finished file, so a run that is killed keeps the metrics of the
files it finished, and a rerun adds to it instead of replacing it.

A file's outputs and its ``metrics.json`` entry appear together or not at all, even across SIGKILL: they are staged
in ``OUT/.mridiff-partial/`` and moved into place under a journal (:mod:`mridiff.io.staging`). Rerunning an
interrupted directory run without ``--overwrite`` skips the finished files and redoes the interrupted one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mridiff.commands.common import EXIT_USER_ERROR, positive_int
from mridiff.errors import InputError
from mridiff.physics.coils import SENS_METHODS
from mridiff.physics.masks import MASK_KINDS

if TYPE_CHECKING:  # imported when the command runs: `mridiff --help` stays fast
    from mridiff.inference.recon_files import MetricsLog, ReconOptions
    from mridiff.inference.reconstruct import Reconstructor


def _note(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"mridiff: note: {line}".replace("\n", " "), file=sys.stderr)  # never spliced into a progress bar


def _crash_message(path: Path, exc: BaseException) -> str:
    """One line for an unexpected failure of one file (the traceback goes to the log with ``--verbose``)."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{path}: failed with {type(exc).__name__}{': ' + first if first else ''}"


def _reconstruct_staged(path: Path, out_dir: Path, rec: Reconstructor, opts: ReconOptions,
                        log: MetricsLog) -> dict[str, Any]:
    """Reconstruct one file into its staging folder, then commit its outputs and its metrics entry together.

    Raises:
        InputError: For a bad input, or outputs that exist without ``--overwrite`` (unless a killed run left them).

    """
    from mridiff.inference.recon_files import output_paths, reconstruct_file
    from mridiff.io.atomic import check_writable
    from mridiff.io.staging import OutputStage

    stage = OutputStage(out_dir, path.name)
    stage.recover()
    finals = output_paths(path, out_dir, with_std=opts.samples > 1)
    for p in finals.values():  # before any work: a killed run's outputs (named by its journal) may be replaced
        check_writable(p, opts.overwrite or p in stage.stale)
    with stage:
        result = reconstruct_file(path, stage.root, rec, opts, note=_note)
        result["outputs"] = {k: str(stage.final_path(v)) if isinstance(v, str) else v
                             for k, v in result.get("outputs", {}).items()}
        replaceable = [p for p in output_paths(path, out_dir).values() if opts.overwrite or p in stage.stale]
        stage.commit(remove=replaceable, last=[finals["h5"]], on_placed=lambda: log.add(result))
    return result


def _is_finished(path: Path, out_dir: Path) -> bool:
    """A file is finished when its submission HDF5 exists and no journal of a killed commit names it."""
    from mridiff.inference.recon_files import output_paths
    from mridiff.io.staging import OutputStage

    return output_paths(path, out_dir)["h5"].exists() and not OutputStage(out_dir, path.name).journal.exists()


def run(args: argparse.Namespace) -> int:
    """Reconstruct the inputs; write submission HDF5, NIfTI, PNG and metrics.json under ``--out``.

    Each file's outputs are written into a staging folder inside ``--out`` and moved into place together with its
    ``metrics.json`` entry (see :mod:`mridiff.io.staging`), so a run killed at any moment (SIGKILL included) is
    finished by running the same command again, without ``--overwrite``. SIGTERM stops the run like Ctrl-C, with
    the temporary files removed.
    """
    from mridiff.inference.provenance import aggregate, run_provenance
    from mridiff.inference.recon_files import MetricsLog, ReconOptions, collect_inputs
    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.io.staging import lock_output_dir, recover_all, terminate_as_interrupt
    from mridiff.physics.masks import MaskSpec

    files = collect_inputs([Path(p) for p in args.inputs])
    out_dir = Path(args.out)
    opts = ReconOptions(coverage=args.coverage, steps=args.steps, sampler=args.sampler, dc=args.dc,
                        samples=args.samples, seed=args.seed,
                        batch_size=args.batch_size, acceleration=args.acceleration,
                        center_fraction=args.center_fraction, mask_type=args.mask_type,
                        sens_method=args.sens_method, noise_std=args.noise_std, overwrite=args.overwrite,
                        progress=not args.no_progress)
    options = {**vars(opts), "center_fraction": MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)
               .fraction, "retrospective_mask_options": "acceleration, center_fraction and mask_type apply to fully "
               "sampled files only; a file's own mask is used as it is (see each file's 'mask')"}
    log = MetricsLog(out_dir / "metrics.json", options, opts.overwrite)  # refuses a foreign file up front
    rec = Reconstructor(args.ckpt, device=args.device, expect_sha256=args.expect_sha256)
    log.provenance = run_provenance(rec.model)
    many = len(files) > 1 or any(Path(p).is_dir() for p in args.inputs)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    crashed = False
    skipped: list[Path] = []
    with lock_output_dir(out_dir), terminate_as_interrupt():
        recover_all(out_dir)  # what a killed run staged goes; its journals say which outputs are stale
        for path in files:
            if many and not opts.overwrite and _is_finished(path, out_dir):
                skipped.append(path)
                continue
            try:
                result = _reconstruct_staged(path, out_dir, rec, opts, log)
            except InputError as exc:
                if not many:
                    raise
                failures.append(exc.message())
                print(f"mridiff: error: {exc.message()}", file=sys.stderr)
                continue
            except Exception as exc:  # noqa: BLE001 - one crashing scan (GPU out of memory, a bug) must not stop the rest
                if not many:
                    raise
                crashed = True
                logging.getLogger(__name__).info("%s failed", path, exc_info=True)
                failures.append(_crash_message(path, exc))
                print(f"mridiff: error: {failures[-1]}", file=sys.stderr)
                continue
            results.append(result)
    if results:
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
    if skipped:
        print(f"skipped {len(skipped)} file(s) with existing outputs (use --overwrite to redo)")
    if failures:
        print(f"mridiff: {len(failures)} file(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1 if crashed else EXIT_USER_ERROR
    return 0


def register(sub: Any) -> None:
    """Add the ``reconstruct`` sub-command."""
    p = sub.add_parser("reconstruct", help="reconstruct fastMRI HDF5 scans")
    p.add_argument("inputs", nargs="+", help="scan files or directories of .h5 files")
    p.add_argument("--ckpt", help="exported model (.safetensors); default: the bundled model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (DDPM always takes all T steps)")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim", help="reverse-diffusion sampler")
    p.add_argument("--dc", choices=["hard", "cg", "soft", "none"], default="hard",
                   help="data consistency with the measured k-space in every step")
    p.add_argument("--coverage", type=float, default=0.9,
                   help="nominal coverage of the calibrated interval written with K > 1 (a level in the model's "
                        "calibration table: 0.5-0.99)")
    p.add_argument("--samples", type=positive_int, default=1,
                   help="K samples for the mean; K > 1 also writes a std map (NAME_std.nii.gz)")
    p.add_argument("--seed", type=int, default=0, help="random seed (masks and sampling)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="slices per batch")
    p.add_argument("--acceleration", type=int, choices=[2, 3, 4, 5, 6, 8, 10, 12, 16], default=4,
                   help="fully sampled files only: retrospective undersampling factor (a file's own mask is used "
                        "as it is)")
    p.add_argument("--center-fraction", type=float,
                   help="fully sampled centre of the retrospective mask (default: fastMRI's, 0.08 at 4x, 0.04 at 8x)")
    p.add_argument("--mask-type", default="random", choices=list(MASK_KINDS),
                   help="retrospective mask kind (1D fastMRI kinds, or 2D poisson / gaussian2d)")
    p.add_argument("--sens-method", choices=list(SENS_METHODS), default="espirit",
                   help="coil maps: ESPIRiT (JSENSE when fewer than 12 calibration lines), JSENSE or low-resolution")
    p.add_argument("--noise-std", type=float, help="k-space noise std for --dc soft (default: estimated)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when usable, else cpu)")
    p.add_argument("--out", default="mridiff-out", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (and their metrics entries)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

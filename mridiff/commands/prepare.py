"""``mridiff prepare TOOL``: the data-preparation tools, reachable from any directory once mridiff is installed.

Each tool turns source images into what training and evaluation read (fastMRI-layout HDF5 with simulated k-space,
split lists, image banks). Defaults match the bundled models' domain: 128x128 matrices and 8 coils for
NIfTI volumes and the template dataset (``mridiff info`` shows the bundled models' matrix), and the 256x256
real-image set (``cheng``) that the ``*_real.yaml`` configs train on. The same tools run as
``python -m data_prep.<module>`` inside the checkout (:func:`run_standalone`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mridiff.commands.common import EXIT_USER_ERROR, positive_int
from mridiff.errors import InputError

# The bundled models' training domain (mridiff/weights/*.json: training.image_size; 8-coil multi-coil data):
# the SR and augmentation models trained on the 128x128 template set, the reconstruction model on the 256x256
# real-image set (and its card's matrix range covers 128x128 too). tests/prep/test_prepare_cli.py checks these
# against the bundled model cards.
BUNDLED_MATRIX = 128
BUNDLED_COILS = 8
REAL_SET_MATRIX = 256  # the real-image set (cheng) at 2x2 area resampling of its 512x512 JPEGs


def _nonnegative_int(text: str) -> int:
    """Argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _finite_float(text: str) -> float:
    """Argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


# --- cheng ---------------------------------------------------------------------------------------------------------


def _add_cheng(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", type=Path, help="output folder (train_images.h5, {single,multi}coil_{val,test}/, ...)")
    p.add_argument("--source", type=Path, default=None,
                   help="the cheng_brain_tumor folder (default: cheng_brain_tumor/ in $MRIDIFF_SHARED/data, else in "
                        "../shared/data beside the checkout)")
    p.add_argument("--size", type=positive_int, default=REAL_SET_MATRIX, help="square output side in pixels")
    p.add_argument("--coils", type=positive_int, default=BUNDLED_COILS, help="coils of the multi-coil files")
    p.add_argument("--snr-db", type=_finite_float, default=30.0, help="simulated k-space SNR in dB")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="simulation seed")
    p.add_argument("--limit", type=positive_int, default=None, help="at most N slices per split (quick tests)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _run_cheng(args: argparse.Namespace) -> int:
    from mridiff.prep.cheng import default_source, prepare

    source = args.source if args.source is not None else default_source()
    record = prepare(source, args.out_dir, args.size, args.coils, args.snr_db, args.seed, args.limit, args.overwrite)
    print(json.dumps(record["counts"]))
    return 0


# --- nifti -> fastMRI ----------------------------------------------------------------------------------------------


def _add_nifti(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="NIfTI volume (.nii or .nii.gz)")
    p.add_argument("out_dir", type=Path, help="output directory; writes <input stem>.h5")
    p.add_argument("--coils", type=_nonnegative_int, default=BUNDLED_COILS,
                   help="number of coils; 0 or 1 = single-coil layout")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=2, help="slicing axis of the RAS+ volume")
    p.add_argument("--size", type=positive_int, default=BUNDLED_MATRIX,
                   help="square output size in pixels (the bundled models' matrix)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="simulation seed")
    p.add_argument("--snr-db", type=_finite_float, default=None, help="k-space SNR in dB (default: no noise)")
    p.add_argument("--slices-range", default=None, help="keep slice indices a:b (before the foreground filter)")
    p.add_argument("--min-foreground", type=float, default=0.1, help="min foreground fraction")
    p.add_argument("--volume", type=_nonnegative_int, default=None, help="volume index of a 4D input")
    p.add_argument("--acquisition", default="AXT1", help="fastMRI acquisition attribute")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _run_nifti(args: argparse.Namespace) -> int:
    from mridiff.data.h5_writer import SimulationSpec
    from mridiff.prep.nifti_to_fastmri import convert, parse_range

    spec = SimulationSpec(coils=args.coils, seed=args.seed, snr_db=args.snr_db, acquisition=args.acquisition)
    out = convert(args.input, args.out_dir, spec, axis=args.axis, size=args.size,
                  slices_range=parse_range(args.slices_range), min_foreground=args.min_foreground,
                  volume_index=args.volume, overwrite=args.overwrite)
    layout = "multi-coil" if spec.multicoil else "single-coil"
    print(f"wrote {out} ({layout}, {args.size}x{args.size}, simulated k-space)")
    return 0


# --- split ---------------------------------------------------------------------------------------------------------


def _add_split(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", type=Path, help="directory of .h5 files")
    p.add_argument("--out", type=Path, required=True, help="directory for train.txt / val.txt / test.txt")
    p.add_argument("--val", nargs="+", default=None, help="fraction of volumes, or file names")
    p.add_argument("--test", nargs="+", default=None, help="fraction of volumes, or file names")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the random assignment")
    p.add_argument("--overwrite", action="store_true", help="replace existing split files")


def _run_split(args: argparse.Namespace) -> int:
    from mridiff.prep.split import SPLITS, parse_choice, split_files, write_splits

    if not args.data_dir.is_dir():
        raise InputError(args.data_dir, "not a directory")
    files = sorted(args.data_dir.glob("*.h5"))
    if not files:
        raise InputError(args.data_dir, "no .h5 files")
    splits = split_files(files, parse_choice(args.val, "--val"), parse_choice(args.test, "--test"), args.seed)
    write_splits(args.out, splits, args.overwrite)
    print(", ".join(f"{s}: {len(splits[s])} files" for s in SPLITS) + f" -> {args.out}")
    return 0


# --- default dataset -----------------------------------------------------------------------------------------------


def _add_default_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", type=Path, help="output root ({single,multi}coil_{train,val,test}/, splits/, ...)")
    p.add_argument("--size", type=positive_int, default=BUNDLED_MATRIX, help="square slice size")
    p.add_argument("--coils", type=positive_int, default=BUNDLED_COILS, help="coils of the multi-coil variant")
    p.add_argument("--snr-db", type=_finite_float, default=30.0, help="k-space SNR in dB (negative = no noise)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="simulation seed")
    p.add_argument("--nimare-wheel", type=Path, default=None, help="nimare wheel holding MNI152NLin6Asym")
    p.add_argument("--download-nimare", action="store_true", help="fetch the nimare wheel with pip download")
    p.add_argument("--sources-dir", type=Path, default=None,
                   help="folder with copies of the template files (instead of nilearn/nimare/../shared)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _run_default_dataset(args: argparse.Namespace) -> int:
    from mridiff.prep.default_dataset import build
    from mridiff.prep.templates import default_templates

    templates = default_templates(args.out_dir / ".cache", args.nimare_wheel, args.download_nimare, args.sources_dir)
    snr = None if args.snr_db < 0 else args.snr_db
    record = build(args.out_dir, templates, size=args.size, coils=args.coils, snr_db=snr, seed=args.seed,
                   overwrite=args.overwrite)
    for src in record["sources"]:
        counts = ", ".join(f"{k} {len(v)} slices" for k, v in src["slices"].items())
        print(f"{src['role']:5s} {src['key']}: {src['description']} [{counts}]")
        print(f"      source: {src['source']}; licence: {src['licence']}; sha256 {src['sha256'][:16]}...")
    if not any(s["key"] == "mni152_nlin6asym" for s in record["sources"]):
        print("note: MNI152NLin6Asym not included; add it with --download-nimare or --nimare-wheel PATH")
    print(f"wrote {args.out_dir} (simulated k-space; see provenance.json)")
    return 0


# --- demo data -----------------------------------------------------------------------------------------------------


def _add_demo_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output .npz (the package ships mridiff/data/demo_cheng.npz, the demo's "
                                          "input, and mridiff/data/demo_colin27.npz, the tutorial's)")
    p.add_argument("--from", dest="kind", choices=["cheng", "colin27"], default="cheng",
                   help="cheng: four real test slices (meningioma/) for `mridiff demo`; colin27: three Colin27 slices")
    p.add_argument("--source", type=Path, help="cheng_brain_tumor folder (default: in the shared data directory)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")


def _run_demo_data(args: argparse.Namespace) -> int:
    from mridiff.prep.demo_data import build_cheng_demo_data, build_demo_data

    picks: list[str] | list[int]
    if args.kind == "cheng":
        picks = build_cheng_demo_data(args.out, args.source, args.overwrite)
    else:
        picks = build_demo_data(args.out, args.overwrite)
    print(f"wrote {args.out} (slices {picks})")
    return 0


@dataclass(frozen=True)
class PrepTool:
    """One ``mridiff prepare`` sub-command.

    Attributes:
        name: The sub-command.
        module: Its ``data_prep`` module name (``python -m data_prep.<module>`` inside the checkout).
        summary: One line for ``--help``.
        add_arguments: Declares its arguments on a parser.
        run: Runs it on parsed arguments; returns the exit status, raises :class:`InputError` on bad input.
        aliases: Other names of the sub-command.
    """

    name: str
    module: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    aliases: tuple[str, ...] = field(default_factory=tuple)


TOOLS: dict[str, PrepTool] = {t.name: t for t in (
    PrepTool("cheng", "cheng", "the real-image set: Cheng brain-tumour JPEGs -> 256x256 image bank + val/test files",
             _add_cheng, _run_cheng),
    PrepTool("nifti", "nifti_to_fastmri", "one NIfTI volume -> fastMRI-layout HDF5 with simulated k-space",
             _add_nifti, _run_nifti, ("nifti-to-fastmri",)),
    PrepTool("split", "split", "train/val/test lists of a folder of .h5 files, whole volumes kept together",
             _add_split, _run_split),
    PrepTool("default-dataset", "make_default_dataset",
             "the template dataset (MNI152 train/val, Colin27 test), 128x128, single- and 8-coil",
             _add_default_dataset, _run_default_dataset, ("make-default-dataset",)),
    PrepTool("demo-data", "make_demo_data", "the inputs bundled with the package (the demo's real test slices)",
             _add_demo_data, _run_demo_data, ("make-demo-data",)),
)}


class _ToolParser(argparse.ArgumentParser):
    """A stand-alone tool's parser: a usage error is one line (exit 2), and ``--help`` shows the defaults."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add an argument as argparse does, then name its default in the help (as ``mridiff --help`` does)."""
        action = super().add_argument(*args, **kwargs)
        hidden = action.default is None or action.default is False or argparse.SUPPRESS in (action.default, action.help)
        shown = not hidden  # (identity for False: a default of 0 is a real default)
        if shown and "default" not in (action.help or ""):
            action.help = f"{action.help or ''} (default: %(default)s)".strip()
        return action

    def error(self, message: str) -> Any:
        raise InputError(None, f"{self.prog}: {message}")


def run_standalone(name: str, argv: Sequence[str] | None = None) -> int:
    """Run one tool as ``python -m data_prep.<module>``: errors print ``error: <message>`` (one line), exit 2.

    Args:
        name: The tool (a key of :data:`TOOLS`).
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    tool = TOOLS[name]
    parser = _ToolParser(prog=f"python -m data_prep.{tool.module}", description=tool.summary)
    tool.add_arguments(parser)
    try:
        return tool.run(parser.parse_args(argv))
    except InputError as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return EXIT_USER_ERROR


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``mridiff prepare`` tool."""
    tool: PrepTool = args.prep_tool
    return tool.run(args)


def register(sub: Any) -> None:
    """Add ``mridiff prepare`` and one sub-command per tool."""
    p = sub.add_parser("prepare", help="prepare data: NIfTI -> fastMRI HDF5, splits, the real-image and template sets",
                       description="Data preparation tools; they run from any directory. Defaults match the bundled "
                                   "models' domain (128x128, 8 coils; 256x256 for the real-image set).")
    tools = p.add_subparsers(dest="prep_command", required=True, metavar="TOOL", parser_class=type(p))
    for tool in TOOLS.values():
        t = tools.add_parser(tool.name, aliases=list(tool.aliases), help=tool.summary, description=tool.summary)
        tool.add_arguments(t)
        t.set_defaults(func=run, prep_tool=tool)

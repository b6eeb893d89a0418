"""Shared helpers for the ``mridiff`` sub-commands (light: ``mridiff --help`` must not import torch)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mridiff.inference.options import SamplingOptions

EXIT_USER_ERROR = 2
# The names of SamplerName, DCMode, Preset, MASK_KINDS and SENS_METHODS, spelled out so that building the parser imports
# no torch (tests/commands/test_common.py keeps them equal to the library's).
SAMPLER_CHOICES: tuple[str, ...] = ("ddim", "ddpm", "dpmpp2m")
DC_CHOICES: tuple[str, ...] = ("hard", "cg", "soft", "none")
MASK_CHOICES: tuple[str, ...] = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction", "poisson",
                                 "gaussian2d")
SENS_CHOICES: tuple[str, ...] = ("espirit", "jsense", "lowres")
PRESET_CHOICES: tuple[str, ...] = ("fast", "balanced", "best")
STEPS_HELP = ("network calls per sample for ddim (default 50) and dpmpp2m (default 20); ddpm always takes all T "
              "steps of the model's schedule and refuses another number")


def positive_int(text: str) -> int:
    """Argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def slices_arg(text: str) -> str:
    """Argparse type: a slice range ``A:B`` (``A:`` or ``:B`` leave an end open), checked and kept as text."""
    from mridiff.workflows.common import parse_slices  # standard library only: --help stays light

    try:
        return str(parse_slices(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sampling_args(p: Any, *, dc: str | None = "hard", samples: int = 1, batch: int = 4) -> None:
    """Add ``--preset --steps --sampler [--dc] --samples --seed --batch-size`` (the fields of ``SamplingOptions``).

    ``--sampler``, ``--steps`` and ``--dc`` default to the preset's values (``inference.options.PRESETS``).
    """
    p.add_argument("--preset", choices=list(PRESET_CHOICES), default="balanced",
                   help="speed/quality trade-off chosen on validation data: fast (no slower than CS), balanced, "
                        "best (DDIM-50); --sampler/--steps/--dc override its parts")
    p.add_argument("--steps", type=positive_int, default=None, help=STEPS_HELP + " (default: the preset's)")
    p.add_argument("--sampler", choices=list(SAMPLER_CHOICES), default=None,
                   help="reverse-diffusion sampler (default: the preset's)")
    if dc is not None:
        p.add_argument("--dc", choices=list(DC_CHOICES), default=None,
                       help=f"data consistency with the measurement in every step (default: the preset's, {dc})")
    p.add_argument("--samples", type=positive_int, default=samples,
                   help="K samples per slice for the mean; K > 1 also gives a std map")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--batch-size", type=positive_int, default=batch, help="slices per batch (halves on GPU OOM)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="network arithmetic: fp32 (default) or bf16 autocast (for GPUs with bf16 units; the "
                        "sampler and data consistency stay fp32)")


def sampling_options(args: argparse.Namespace, **fixed: Any) -> SamplingOptions:
    """The :class:`SamplingOptions` of parsed arguments (``fixed`` overrides, e.g. ``dc="hard"``)."""
    from mridiff.inference.options import preset_options

    values = {"steps": args.steps, "sampler": args.sampler, "dc": getattr(args, "dc", None),
              "samples": args.samples, "seed": args.seed, "batch_size": args.batch_size,
              "progress": not getattr(args, "no_progress", False), "precision": getattr(args, "precision", None)}
    return preset_options(getattr(args, "preset", "balanced"), **{**values, **fixed})

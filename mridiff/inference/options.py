"""``SamplingOptions``: how to sample, shared by the Python API, the command line and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from mridiff.diffusion.samplers import Sampler, SamplerName, make_sampler
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.physics.consistency import DataConsistency, DCMode, make_consistency
from mridiff.utils import parse_choice


class Precision(str, Enum):
    """Arithmetic of the network calls (``str``-valued): ``fp32``, or ``bf16`` autocast.

    With bf16 the state, the sampler and data consistency stay in fp32; only the network's matmuls and convolutions
    drop to bf16 (for GPUs with bf16 units).
    """

    FP32 = "fp32"
    BF16 = "bf16"


@dataclass(frozen=True)
class SamplingOptions:
    """Sampler, data consistency, K samples, seed and batching of one sampling run.

    Strings are accepted wherever an enum is expected (``SamplingOptions(sampler="ddpm", dc="soft")``) and are
    checked when the options are made.

    Attributes:
        steps: network evaluations per sample for DDIM (default 50) and DPM-Solver++ (default 20); ``None`` for
            the default. DDPM always takes all T steps of the schedule and refuses any other number.
        sampler: ``ddim``, ``ddpm`` or ``dpmpp2m``.
        dc: data consistency in every step, ``hard``, ``cg``, ``soft`` or ``none``.
        samples: K samples per slice; K > 1 gives a per-pixel std.
        seed: base seed; the noise of sample k of slice i comes from ``(seed, i, k)`` alone, so results do not
            depend on ``batch_size`` (bit-identical on the CPU).
        batch_size: slices per batch (each with K samples); halves on GPU out-of-memory.
        progress: show a progress bar over network calls.
        cg_iters: conjugate-gradient iterations per step (``cg``, and SENSE operators for ``hard`` / ``soft``).
        cg_tol: CG relative tolerance.
        precision: ``fp32`` or ``bf16`` for the network calls (:class:`Precision`).

    """

    steps: int | None = None
    sampler: SamplerName = SamplerName.DDIM
    dc: DCMode = DCMode.HARD
    samples: int = 1
    seed: int = 0
    batch_size: int = 4
    progress: bool = False
    cg_iters: int = 5
    cg_tol: float = field(default=1e-6, repr=False)
    precision: Precision = Precision.FP32

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", parse_choice(Precision, self.precision, "precision"))
        object.__setattr__(self, "sampler", parse_choice(SamplerName, self.sampler, "sampler"))
        object.__setattr__(self, "dc", parse_choice(DCMode, self.dc, "data-consistency mode"))
        for name in ("samples", "batch_size", "cg_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    def make_sampler(self, schedule: NoiseSchedule) -> Sampler:
        """A fresh sampler for ``schedule`` (``ValueError`` for DDPM with a step count other than T)."""
        return make_sampler(self.sampler, schedule, self.steps)

    def consistency(self) -> DataConsistency:
        """The data-consistency step."""
        return make_consistency(self.dc, self.cg_iters, self.cg_tol)


class Preset(str, Enum):
    """Named speed/quality trade-offs (``str``-valued, so CLI strings compare equal)."""

    FAST = "fast"
    BALANCED = "balanced"
    BEST = "best"


# Chosen on the validation curve of benchmarks/presets.py (real clinical images, simulated k-space, 256² single-coil
# 4x, 6 validation slices; the test folder chooses nothing): benchmarks/results/presets_val.md. DDIM-10 scored as
# DDIM-50 (27.70 vs 27.61 dB) at 4.8x the speed; DDIM-5 took 0.65x the time of sigpy L1-wavelet CS for -0.2 dB
# against DDIM-50; DPM-Solver++(2M) was no better than DDIM at 5-10 calls with data consistency in every step, so
# the presets keep DDIM. ``cg_iters`` is for multi-coil (SENSE) data consistency.
PRESETS: dict[Preset, dict[str, Any]] = {
    Preset.FAST: {"sampler": SamplerName.DDIM, "steps": 5, "dc": DCMode.HARD, "cg_iters": 5},
    Preset.BALANCED: {"sampler": SamplerName.DDIM, "steps": 10, "dc": DCMode.HARD, "cg_iters": 5},
    Preset.BEST: {"sampler": SamplerName.DDIM, "steps": 50, "dc": DCMode.HARD, "cg_iters": 5},
}


def preset_options(preset: str | Preset = Preset.BALANCED, **overrides: Any) -> SamplingOptions:
    """The :class:`SamplingOptions` of a preset, with any field overridden (``None`` values are ignored).

    Overriding the sampler drops the preset's step count (DDPM takes all T steps; another sampler has its own
    default) unless ``steps`` is given too.

    Args:
        preset: ``fast``, ``balanced`` (the command line's default) or ``best``.
        **overrides: :class:`SamplingOptions` fields.

    Raises:
        ValueError: for an unknown preset or an invalid field.

    """
    values = dict(PRESETS[parse_choice(Preset, preset, "preset")])
    given = {k: v for k, v in overrides.items() if v is not None}
    if "sampler" in given and parse_choice(SamplerName, given["sampler"], "sampler") != values["sampler"]:
        values.pop("steps")
    return replace(SamplingOptions(), **{**values, **given})

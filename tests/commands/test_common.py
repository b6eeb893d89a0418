"""The command line spells out the library's choices (so `mridiff --help` imports no torch); they must agree."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mridiff.commands.common import (
    DC_CHOICES,
    MASK_CHOICES,
    PRESET_CHOICES,
    SAMPLER_CHOICES,
    SENS_CHOICES,
    add_sampling_args,
    sampling_options,
)
from mridiff.diffusion.samplers import SamplerName
from mridiff.inference.options import PRESETS, Preset, preset_options
from mridiff.physics.coils import SENS_METHODS
from mridiff.physics.consistency import DCMode
from mridiff.physics.masks import MASK_KINDS


def test_cli_choices_are_the_librarys() -> None:
    assert set(SAMPLER_CHOICES) == {m.value for m in SamplerName}
    assert DC_CHOICES == tuple(m.value for m in DCMode)
    assert MASK_CHOICES == MASK_KINDS and SENS_CHOICES == SENS_METHODS
    assert PRESET_CHOICES == tuple(m.value for m in Preset)


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_sampling_args(p)
    return p.parse_args(list(argv))


def test_presets_are_the_default_and_flags_override_their_parts() -> None:
    balanced = sampling_options(_parse())
    assert (balanced.sampler, balanced.steps, balanced.dc, balanced.cg_iters) == tuple(
        PRESETS[Preset.BALANCED][k] for k in ("sampler", "steps", "dc", "cg_iters"))
    fast = sampling_options(_parse("--preset", "fast", "--dc", "soft", "--samples", "3"))
    assert fast.sampler == PRESETS[Preset.FAST]["sampler"] and fast.steps == PRESETS[Preset.FAST]["steps"]
    assert fast.dc == "soft" and fast.samples == 3
    # another sampler drops the preset's step count (DDPM must take all T steps) unless --steps is given
    assert sampling_options(_parse("--sampler", "ddpm")).steps is None
    assert sampling_options(_parse("--sampler", "ddim", "--steps", "7")).steps == 7
    assert sampling_options(_parse("--preset", "best")) == preset_options("best", progress=True)


def test_preset_options_refuse_unknown_names_and_bad_fields() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        preset_options("fastest")
    with pytest.raises(ValueError, match="samples"):
        preset_options("fast", samples=0)


def test_help_and_info_import_neither_torch_nor_lightning() -> None:
    code = ("import sys\nfrom mridiff.cli import build_parser\nbuild_parser()\nimport mridiff.commands.info\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'lightning', "
            "'pytorch_lightning', 'sigpy'))\nassert not bad, bad[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]

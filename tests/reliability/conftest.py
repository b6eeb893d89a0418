"""Fixtures for the reliability tests: the bad-input corpus and tiny good inputs, generated into temporary dirs.

Nothing binary is committed: :mod:`bad_inputs` writes every file on demand (it is the issue's ``tests/bad_inputs/``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bad_inputs  # noqa: E402


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> bad_inputs.Assets:
    """The tiny model, a good 3-slice 32x32 scan and a 2-file training set (shared; do not modify)."""
    return bad_inputs.build_assets(tmp_path_factory.mktemp("reliability_assets"))


@pytest.fixture
def good_scan(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make(name="scan.h5", **kwargs)`` writing a good scan into this test's temporary directory."""

    def make(name: str = "scan.h5", **kwargs: object) -> Path:
        return bad_inputs.write_good_scan(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


def recon_argv(inputs: list[Path], model: Path, out: Path, *extra: str) -> list[str]:
    """``mridiff reconstruct`` arguments for the tiny model, 2 steps, on the CPU."""
    return ["reconstruct", *map(str, inputs), "--ckpt", str(model), "--steps", "2", "--device", "cpu",
            "--out", str(out), "--no-progress", *extra]


@pytest.fixture
def run_recon(assets: bad_inputs.Assets) -> Callable[..., bad_inputs.Outcome]:
    """``run(inputs, out, *extra)``: ``mridiff reconstruct`` in-process with the tiny model."""

    def run(inputs: list[Path], out: Path, *extra: str) -> bad_inputs.Outcome:
        inv = bad_inputs.Invocation("mridiff", recon_argv(inputs, assets.model, out, *extra), out, inputs[0])
        return bad_inputs.run_inprocess(inv)

    return run

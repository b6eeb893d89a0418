"""Issue 6.2: bounded, derandomized fuzzing of the HDF5 reader, the NIfTI reader and the config loader.

Any exception other than :class:`~mridiff.errors.InputError` fails (warnings are fine). ``scripts/fuzz_long.py``
runs the same targets for longer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import fuzz_targets as ft
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(ft.h5_specs())
def test_fuzz_hdf5_structure(spec: ft.H5Spec) -> None:
    ft.check_h5_spec(spec)


@FUZZ
@given(ft.mutations, st.one_of(st.none(), st.integers(0, len(ft.GOOD_H5))))
def test_fuzz_hdf5_bytes(edits: list[tuple[int, int]], cut: int | None) -> None:
    ft.check_h5_bytes(edits, cut)


@FUZZ
@given(ft.nifti_specs())
def test_fuzz_nifti_structure(spec: ft.NiftiSpec) -> None:
    ft.check_nifti_spec(spec)


@FUZZ
@given(st.booleans().flatmap(lambda gz: st.tuples(st.just(gz), ft.nifti_any_edits if gz else ft.nifti_header_edits)),
       st.one_of(st.none(), st.integers(0, len(ft.GOOD_NII_GZ))))
def test_fuzz_nifti_bytes(gz_edits: tuple[bool, list[tuple[int, int]]], cut: int | None) -> None:
    gz, edits = gz_edits
    ft.check_nifti_bytes(edits, gz, cut)


@FUZZ
@given(ft.config_dicts())
def test_fuzz_config_structure(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ft.check_config_dict(data, Path(tmp) / "cfg.yaml")


@FUZZ
@given(ft.config_text)
def test_fuzz_config_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ft.check_config_text(raw, Path(tmp) / "cfg.yaml")


def test_fuzz_targets_ran() -> None:
    """The targets above really executed (run in the same session, after them)."""
    if not ft.CASES_RUN:
        return  # this test was selected alone
    assert all(n >= 30 for n in ft.CASES_RUN.values()), ft.CASES_RUN

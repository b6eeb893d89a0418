"""Long fuzzing run of the HDF5 reader, the NIfTI reader and the config loader (issue 6).

Runs the same Hypothesis targets as ``tests/reliability/test_rel_fuzz.py`` with many more examples and a chosen seed,
prints how many cases each target ran and whether any crashed (raised anything but ``InputError``), and writes the
figures to ``benchmarks/results/fuzz_long.json``.

Usage::

    OMP_NUM_THREADS=1 python scripts/fuzz_long.py --examples 2000 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "reliability"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import fuzz_targets as ft  # noqa: E402
import h5py  # noqa: E402
import hypothesis  # noqa: E402
import nibabel  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "fuzz_long.json"


def _config_dict(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ft.check_config_dict(data, Path(tmp) / "cfg.yaml")


def _config_text(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ft.check_config_text(raw, Path(tmp) / "cfg.yaml")


def _nifti_bytes(gz_edits: tuple[bool, list[tuple[int, int]]], cut: int | None) -> None:
    ft.check_nifti_bytes(gz_edits[1], gz_edits[0], cut)


TARGETS: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
    "hdf5_structure": (ft.check_h5_spec, (ft.h5_specs(),)),
    "hdf5_bytes": (ft.check_h5_bytes, (ft.mutations, st.one_of(st.none(), st.integers(0, len(ft.GOOD_H5))))),
    "nifti_structure": (ft.check_nifti_spec, (ft.nifti_specs(),)),
    "nifti_bytes": (_nifti_bytes, (
        st.booleans().flatmap(lambda gz: st.tuples(st.just(gz), ft.nifti_any_edits if gz else ft.nifti_header_edits)),
        st.one_of(st.none(), st.integers(0, len(ft.GOOD_NII_GZ))))),
    "config_structure": (_config_dict, (ft.config_dicts(),)),
    "config_bytes": (_config_text, (ft.config_text,)),
}


def run_target(name: str, examples: int, rng_seed: int) -> dict[str, Any]:
    """Run one target for ``examples`` cases; return its figures (cases run, crash, seconds)."""
    fn, strategies = TARGETS[name]
    conf = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck), print_blob=True)
    test = seed(rng_seed)(conf(given(*strategies)(fn)))
    before = ft.CASES_RUN[name]
    start = time.perf_counter()
    crash = None
    try:
        test()
    except Exception as exc:  # noqa: BLE001 - a crash is what we are looking for; report it
        crash = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        traceback.print_exc()
    return {"cases": ft.CASES_RUN[name] - before, "crashed": crash is not None, "crash": crash,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    """Run every target (or those named) and print and save the figures; exit 1 on any crash."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="Hypothesis examples per target")
    parser.add_argument("--seed", type=int, default=1, help="Hypothesis seed (the run is reproducible)")
    parser.add_argument("--targets", nargs="*", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures")
    args = parser.parse_args(argv)
    for name in ("nibabel", "nibabel.global"):  # damaged headers make nibabel log a line per case
        logging.getLogger(name).setLevel(logging.ERROR)

    results = {}
    for name in args.targets:
        results[name] = res = run_target(name, args.examples, args.seed)
        status = f"CRASHED: {res['crash']}" if res["crashed"] else "none crashed"
        print(f"{name:18s} {res['cases']:6d} cases in {res['seconds']:7.1f} s, {status}", flush=True)
    total = sum(r["cases"] for r in results.values())
    crashed = [n for n, r in results.items() if r["crashed"]]
    print(f"total: {total} cases, {'crashes in ' + ', '.join(crashed) if crashed else 'none crashed'}")
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.machine()}, {platform.system()})",
        "versions": {"python": platform.python_version(), "hypothesis": hypothesis.__version__,
                     "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "nibabel": nibabel.__version__},
        "examples_per_target": args.examples, "seed": args.seed, "total_cases": total, "crashed": crashed,
        "targets": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())

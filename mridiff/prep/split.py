"""Split a directory of fastMRI-layout files into train / val / test lists, keeping whole volumes apart.

Usage::

    mridiff prepare split DIR --out SPLITS_DIR [--val 0.1 | --val a.h5 b.h5] [--test 0.1 | --test c.h5]
        [--seed 0] [--overwrite]

``--val`` / ``--test`` take either one fraction (of volumes) or file names (``name.h5`` or ``name``). Files that
come from the same source volume (the ``source_volume`` attribute data_prep writes; else the file stem) form one
group and always land in the same split. Writes ``train.txt``, ``val.txt``, ``test.txt`` (file names, one a line).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from mridiff.errors import InputError
from mridiff.io.atomic import atomic_write_text, check_writable

SPLITS = ("train", "val", "test")


def volume_key(path: Path) -> str:
    """The source volume a file belongs to: its ``source_volume`` attribute, else its stem."""
    try:
        with h5py.File(path, "r") as hf:
            value = hf.attrs.get("source_volume")
    except OSError as exc:
        raise InputError(path, f"cannot open HDF5 file ({exc})") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value) if value else path.stem


def parse_choice(values: Sequence[str] | None, flag: str) -> float | list[str]:
    """Read ``--val`` / ``--test``: one number is a fraction of volumes, anything else a list of file names.

    Raises:
        InputError: for a fraction outside [0, 1).
    """
    if not values:
        return 0.0
    if len(values) == 1:
        try:
            fraction = float(values[0])
        except ValueError:
            return list(values)
        if not 0.0 <= fraction < 1.0:
            raise InputError(None, f"{flag} fraction must be in [0, 1), got {values[0]}")
        return fraction
    return list(values)


def split_files(
    files: Sequence[Path], val: float | Sequence[str], test: float | Sequence[str], seed: int = 0
) -> dict[str, list[str]]:
    """Assign files to splits by volume group.

    Args:
        files: The ``.h5`` files.
        val: Fraction of volume groups, or file names (with or without ``.h5``) for validation.
        test: The same for test.
        seed: Seed for the random assignment of the remaining groups.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` sorted file names; groups never straddle splits.

    Raises:
        InputError: On an unknown file name, a name given to both val and test, or an empty training split.
    """
    groups: dict[str, list[Path]] = {}
    for f in sorted(files):
        groups.setdefault(volume_key(f), []).append(f)
    by_name = {f.name: k for k, fs in groups.items() for f in fs} | {f.stem: k for k, fs in groups.items() for f in fs}
    assigned: dict[str, str] = {}
    for split, choice in (("test", test), ("val", val)):
        if isinstance(choice, float):
            continue
        for name in choice:
            if name not in by_name:
                raise InputError(name, f"--{split}: no such file among {len(files)} files")
            key = by_name[name]
            if assigned.get(key, split) != split:
                raise InputError(name, f"volume '{key}' is named for both {assigned[key]} and {split}")
            assigned[key] = split
    free = [k for k in sorted(groups) if k not in assigned]
    order = [free[i] for i in np.random.default_rng(seed).permutation(len(free))]
    for split, choice in (("test", test), ("val", val)):
        if isinstance(choice, float) and choice > 0.0:
            n = max(1, int(round(choice * len(groups))))
            for key in order[:n]:
                assigned[key] = split
            order = order[n:]
    result: dict[str, list[str]] = {s: [] for s in SPLITS}
    for key, fs in groups.items():
        result[assigned.get(key, "train")] += [f.name for f in fs]
    if not result["train"]:
        raise InputError(None, "no volume left for training", "use smaller --val/--test")
    return {s: sorted(v) for s, v in result.items()}


def read_split(path: str | Path) -> list[str]:
    """Read a split file written by this module (one file name a line; blank lines and ``#`` comments skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def write_splits(out_dir: str | Path, splits: dict[str, list[str]], overwrite: bool = False) -> list[Path]:
    """Write ``train.txt``, ``val.txt``, ``test.txt`` atomically (checking all three before writing any)."""
    paths = [Path(out_dir) / f"{s}.txt" for s in SPLITS]
    for p in paths:
        check_writable(p, overwrite)
    for s, p in zip(SPLITS, paths, strict=True):
        atomic_write_text(p, "".join(f"{name}\n" for name in splits[s]), overwrite)
    return paths

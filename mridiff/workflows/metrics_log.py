"""``metrics.json`` of an output directory: one entry per finished file, an aggregate, settings and provenance.

Under ``torchrun`` no two processes write one file: each rank keeps its finished entries in its own partial file
(``.metrics.rankN.json``) and rank 0 merges them into ``metrics.json`` after the ranks meet at a barrier
(:func:`merge_partials`). A run killed before the merge leaves the partial files; the next run (distributed or not)
merges them, so no finished file's entry is lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mridiff.errors import InputError
from mridiff.inference.provenance import METHODS, aggregate
from mridiff.io.outputs import write_json

METRICS_JSON_MAX_BYTES = 64 * 2**20
PARTIAL_GLOB = ".metrics.rank*.json"


def partial_path(path: Path, rank: int) -> Path:
    """Where rank ``rank`` keeps its entries beside ``metrics.json`` (``.metrics.rankN.json``)."""
    return path.with_name(f".{path.stem}.rank{rank}.json")


def _read_entries(path: Path) -> list[dict[str, Any]] | None:
    """The entries of a metrics file written by mridiff, or ``None`` when it is not one (or unreadable)."""
    entries: Any = None
    try:
        if path.is_file() and path.stat().st_size <= METRICS_JSON_MAX_BYTES:
            entries = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        entries = None
    if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries):
        return entries
    return None


def _upsert(entries: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    same = [i for i, e in enumerate(entries) if e.get("file") == entry["file"]]
    if same:
        entries[same[0]] = entry
    else:
        entries.append(entry)


class MetricsLog:
    """``metrics.json`` of an output directory, rewritten atomically after every finished file.

    Entries of earlier runs are kept (a rerun that skips finished files still lists them); an entry is replaced
    only when its file is processed again. A ``metrics.json`` that mridiff cannot read as its own is refused
    without ``overwrite`` (and replaced with it), before any work is done.

    Beside the entries the file holds the run's ``options``, its ``provenance`` (model file and SHA-256, software
    versions, device: see :mod:`mridiff.inference.provenance`; each entry also carries the provenance of the run
    that made it) and an ``aggregate`` over all entries (mean and sample standard deviation per method and metric,
    as fastMRI's evaluate reports them).

    Args:
        path: The ``metrics.json``.
        options: The run's settings, stored beside the entries.
        overwrite: Whether an unreadable or foreign ``metrics.json`` may be replaced.
        provenance: Where the results come from (may also be set later, once the model is loaded).
        methods: The methods the aggregate summarises (keys of an entry holding metric dicts).
        rank: Under ``torchrun``, this process's rank: its entries go to its partial file (see the module
            docstring) and ``metrics.json`` itself is only read; ``None`` for a single process.

    Raises:
        InputError: For a ``metrics.json`` that is not mridiff's, without ``overwrite``.

    """

    def __init__(self, path: Path, options: dict[str, Any], overwrite: bool,
                 provenance: dict[str, Any] | None = None, methods: Sequence[str] = METHODS,
                 rank: int | None = None) -> None:
        self.path = path
        self.options = options
        self.provenance = provenance
        self.methods = tuple(methods)
        self.rank = rank
        self.entries: list[dict[str, Any]] = self._load(overwrite)
        if rank is not None:  # only this rank's entries, kept across a killed run until rank 0 merges them
            self.entries = _read_entries(partial_path(path, rank)) or []

    def _load(self, overwrite: bool) -> list[dict[str, Any]]:
        if not self.path.exists() and not self.path.is_symlink():
            return []
        entries = _read_entries(self.path)
        if entries is not None:
            return entries
        if overwrite and not self.path.is_dir():
            return []
        raise InputError(self.path, "exists but is not a metrics file written by mridiff",
                         "pass --overwrite to replace it, or choose another --out")

    def add(self, entry: dict[str, Any]) -> None:
        """Record one finished file (replacing an earlier entry of the same file) and rewrite the file."""
        if self.provenance is not None and "provenance" not in entry:
            entry = {**entry, "provenance": self.provenance}
        _upsert(self.entries, entry)
        self._write(self.path if self.rank is None else partial_path(self.path, self.rank), self.entries)

    def merge_partials(self) -> int:
        """Fold every partial file beside ``metrics.json`` into it (a newer partial wins) and delete them.

        Call from one process only, when no rank writes any more (after the barrier, or before a single-process
        run starts). A foreign ``metrics.json`` was refused or cleared when the log was made.

        Returns:
            How many partial files were merged.

        """
        # A rank killed while writing leaves the temporary file of its atomic write (a kill cannot be caught);
        # nobody writes now, so such leftovers of the partials and of metrics.json itself are garbage.
        for pattern in (f".{PARTIAL_GLOB}.*.part", f".{self.path.name}.*.part"):
            for leftover in self.path.parent.glob(pattern):
                leftover.unlink(missing_ok=True)
        partials = sorted(self.path.parent.glob(PARTIAL_GLOB), key=lambda p: (p.stat().st_mtime_ns, p.name))
        merged = [dict(e) for e in (_read_entries(self.path) or [] if self.rank is not None else self.entries)]
        newest: dict[str, dict[str, Any]] = {}
        for part in partials:
            newest.update({e["file"]: e for e in _read_entries(part) or []})
        for name in sorted(newest):  # the order a single process would have used (inputs are sorted)
            _upsert(merged, newest[name])
        if partials or self.rank is not None:
            self._write(self.path, merged)
        for part in partials:
            part.unlink(missing_ok=True)
        if self.rank is None:
            self.entries = merged
        return len(partials)

    def _write(self, path: Path, entries: list[dict[str, Any]]) -> None:
        write_json(path, {"files": entries, "options": self.options, "provenance": self.provenance,
                          "aggregate": aggregate(entries, self.methods)}, overwrite=True)

"""Pieces every file workflow shares: slice ranges, one-line messages and the inference log.

Light on purpose (standard library only): the command line imports it to build its parser.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

_SLICES = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")
_BAR = re.compile(r"\d+%\|")  # what a tqdm bar line carries ("reconstruct:  40%|####   | 4/10 [...]")


@dataclass(frozen=True)
class SliceRange:
    """Slices ``start`` to ``stop - 1`` of a volume, as Python's ``a:b`` (either end may be left open).

    Attributes:
        start: first slice (``None``: 0).
        stop: one past the last slice (``None``: the end of the volume; a stop past the end is the end).

    """

    start: int | None = None
    stop: int | None = None

    def indices(self, num_slices: int) -> list[int]:
        """The selected slice indices of a volume with ``num_slices`` slices.

        Raises:
            ValueError: if the range selects no slice of this volume.

        """
        start = self.start or 0
        stop = num_slices if self.stop is None else min(self.stop, num_slices)
        if start >= stop:
            raise ValueError(f"--slices {self} selects no slice of a volume with {num_slices} slice(s)")
        return list(range(start, stop))

    def __str__(self) -> str:
        return f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"


def parse_slices(text: str) -> SliceRange:
    """Parse ``a:b``, ``a:`` or ``:b`` (0-based, ``b`` excluded) into a :class:`SliceRange`.

    Raises:
        ValueError: for anything else, or an empty range (``b <= a``).

    """
    match = _SLICES.match(text)
    if match is None:
        raise ValueError(f"expected START:STOP (e.g. 10:20, 0-based, STOP excluded), got {text!r}")
    start, stop = (int(g) if g else None for g in match.groups())
    if start is not None and stop is not None and stop <= start:
        raise ValueError(f"STOP must be larger than START, got {text!r}")
    return SliceRange(start, stop)


def crash_message(path: Path, exc: BaseException) -> str:
    """One line for an unexpected failure of one file (the traceback goes to the log with ``--verbose``)."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{path}: failed with {type(exc).__name__}{': ' + first if first else ''}"


def log_name(command: str, rank: int = 0) -> str:
    """``reconstruct.log``; under ``torchrun`` every rank but 0 writes its own ``reconstruct.rankN.log``."""
    return f"{command}.log" if rank == 0 else f"{command}.rank{rank}.log"


class _Tee:
    """A text stream that writes through to ``target`` and hands each complete line to ``log``."""

    def __init__(self, target: TextIO, log: InferenceLog) -> None:
        self._target = target
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        self._target.write(text)
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._log.screen_line(line)
        if len(self._pending) > 1 << 16:  # a bar redrawn for hours without a newline: keep its last frame only
            self._pending = self._pending.rsplit("\r", 1)[-1]
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._target, name)


class InferenceLog:
    """A plain-text log of a run: its settings, then every line the user sees, without the progress bars.

    Inside ``with log:`` whatever goes to ``sys.stdout`` and ``sys.stderr`` (results, notes, one-line warnings and
    errors) is also appended to ``path``; a progress bar's frames (text after a carriage return with a ``NN%|``
    bar) are left out, while lines written above a bar with ``tqdm.write`` are kept. The file is appended to, so
    a resumed run adds to the log of the run it finishes.

    Lines are held in memory until :meth:`keep` is called (when the run has written its first output): a run that
    fails before producing anything leaves no log behind, as it leaves no other file.

    Args:
        path: the log file (beside ``metrics.json``).
        command: the command, for the header line.
        settings: what determines the result (options, model and its SHA-256, device), written as one JSON line.

    """

    def __init__(self, path: Path, command: str, settings: dict[str, Any]) -> None:
        self.path = path
        self._buffer: list[str] | None = [
            f"# mridiff {command}, started {datetime.now().astimezone().isoformat(timespec='seconds')} "
            f"(pid {os.getpid()})",
            "# settings: " + json.dumps(settings, sort_keys=True, default=str),
        ]
        self._file: TextIO | None = None
        self._saved: tuple[TextIO, TextIO] | None = None

    def screen_line(self, raw: str) -> None:
        """Record one line as the terminal shows it (a carriage return starts the line afresh)."""
        parts = raw.split("\r")
        line = parts[-1].rstrip()
        if not line or (len(parts) > 1 and _BAR.search(line)):
            return
        self.record(line)

    def record(self, line: str) -> None:
        """Append ``line`` to the log (held in memory until :meth:`keep`)."""
        if self._buffer is not None:
            self._buffer.append(line)
        elif self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def keep(self) -> None:
        """Write the held lines to the file and write through from now on (idempotent)."""
        if self._buffer is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - closed in __exit__
        self._file.write("\n".join(self._buffer) + "\n")
        self._file.flush()
        self._buffer = None

    def __enter__(self) -> InferenceLog:
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self)
        sys.stderr = _Tee(sys.stderr, self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        if exc is not None:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.record(f"# stopped: {type(exc).__name__}{': ' + first if first else ''}")
        if self._file is not None:
            self.record(f"# finished {datetime.now().astimezone().isoformat(timespec='seconds')}")
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

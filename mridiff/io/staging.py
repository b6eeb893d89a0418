"""All of an input's outputs or none, across a crash or a kill: stage them, then move them into place.

``mridiff reconstruct`` writes each input's outputs into a staging folder inside ``--out``
(``OUT/.mridiff-partial/NAME/out/``, laid out like ``--out`` itself) and then commits them:

1. it writes a journal (``OUT/.mridiff-partial/NAME/commit.json``, atomically) naming the outputs it is about to
   put in place;
2. it moves the staged files into place one by one (``os.replace``, each move atomic; the submission HDF5, which
   directory runs look for, last) and removes outputs of the input that this run no longer produces;
3. it records the input as finished (``metrics.json``) and only then deletes the journal and the staging folder.

A kill, even SIGKILL, before step 1 leaves the earlier outputs untouched and a staging folder that the next run
deletes. A kill during steps 2-3 leaves the journal: the next run knows that the outputs named there were put in
place by mridiff for an input that never finished, treats them as stale and reconstructs the input again,
replacing them without ``--overwrite``. An input is finished when its submission HDF5 exists and no journal names
it. SIGTERM and SIGINT are held back while a commit is under way (a few renames), so they never leave a journal;
elsewhere they stop the run and the staging folder is removed.

One run at a time may write into an output folder: :func:`lock_output_dir` holds an advisory lock on it (released
by the kernel when the process dies), because the recovery of one run would delete the staging folders of another.
The ranks of one ``torchrun`` job share the folder: each holds a shared lock (so a single-process run is refused
while they write, and they are refused while it writes), works on its own inputs only, recovers only their
staging folders and writes no file another rank writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mridiff.errors import InputError, Interrupted
from mridiff.io.atomic import atomic_write_text

STAGING_DIR = ".mridiff-partial"
JOURNAL = "commit.json"


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def lock_output_dir(out_dir: Path, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``out_dir`` (created if needed) for the ``with`` block.

    Args:
        out_dir: The output directory.
        shared: Take a shared lock (the ranks of one ``torchrun`` job, which write disjoint files) instead of an
            exclusive one.

    Raises:
        InputError: If another process holds a conflicting lock (another run is writing into the same folder).

    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out_dir, f"cannot create output directory: {exc.strerror}") from None
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            raise InputError(out_dir, "another mridiff run is writing into this output directory",
                             "wait for it to finish, or choose another --out") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
        if created:  # a run that wrote nothing (a bad input, say) leaves no empty folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`~mridiff.errors.Interrupted` (like Ctrl-C) inside the block, so cleanup runs.

    Without this, SIGTERM ends Python at once and no ``finally`` block runs. Outside the main thread (where
    signal handlers cannot be set) the block runs unchanged.
    """
    if not _is_main_thread():
        yield
        return

    def raise_interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a short critical section, then act on the first one that arrived."""
    if not _is_main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        if pending[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(pending[0])


class OutputStage:
    """The staging folder and commit journal of one input's outputs in an output directory.

    Args:
        out_dir: The output directory (``--out``).
        name: A name unique to the input within ``out_dir`` (its file name).

    Attributes:
        root: Where the input's outputs are written first, laid out like ``out_dir``.
        stale: Outputs a killed commit may have put in place for this input (they may be replaced); filled by
            :meth:`recover`.

    """

    def __init__(self, out_dir: Path, name: str) -> None:
        self.out_dir = out_dir
        self.folder = out_dir / STAGING_DIR / name
        self.root = self.folder / "out"
        self.journal = self.folder / JOURNAL
        self.stale: set[Path] = set()

    def recover(self) -> set[Path]:
        """Delete what a killed run staged for this input; return the outputs a killed commit left (stale).

        The journal of a killed commit is kept until this input is committed again, so a second kill does not lose
        the knowledge that those outputs are stale.
        """
        self._discard_staged()
        self.stale = set()
        if self.journal.is_file():
            try:
                data = json.loads(self.journal.read_text(encoding="utf-8"))
                self.stale = {self.out_dir / rel for rel in data["outputs"] if _inside(rel)}
            except (OSError, ValueError, KeyError, TypeError):  # never written by mridiff: not a journal
                self.journal.unlink(missing_ok=True)
        self._remove_empty()
        return self.stale

    def final_path(self, staged: str | os.PathLike[str]) -> Path:
        """Where a file written under :attr:`root` goes in the output directory (other paths are kept)."""
        p = Path(staged)
        try:
            return self.out_dir / p.relative_to(self.root)
        except ValueError:
            return p

    def commit(self, remove: Iterable[Path] = (), last: Iterable[Path] = (),
               on_placed: Callable[[], None] | None = None) -> list[Path]:
        """Move every staged file into place, then call ``on_placed`` (record the input) and drop the journal.

        Args:
            remove: Outputs of this input in ``out_dir`` that this run does not produce and that go (a std map of
                an earlier K > 1 run, say); only those that exist are removed.
            last: Final paths to move after all others (the file that marks the input as done).
            on_placed: Called once every file is in place, before the journal is removed (e.g. write metrics).

        Returns:
            The final paths now in place.

        """
        staged = sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.endswith(".part"))
        finals = [self.final_path(p) for p in staged]
        last_set = set(last)
        order = sorted(zip(staged, finals, strict=True), key=lambda pair: pair[1] in last_set)
        gone = [p for p in remove if (p.exists() or p.is_symlink()) and p not in set(finals)]
        with signals_held():
            names = sorted({str(p.relative_to(self.out_dir)) for p in [*finals, *gone]} |
                           {str(p.relative_to(self.out_dir)) for p in self.stale})
            atomic_write_text(self.journal, json.dumps({"outputs": names}, indent=1) + "\n", overwrite=True)
            for src, dst in order:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            for p in gone:
                p.unlink(missing_ok=True)
            if on_placed is not None:
                on_placed()
            self.journal.unlink()
            self.stale = set()
            self._discard_staged()
            self._remove_empty()
        return finals

    def discard(self) -> None:
        """Remove what was staged (after a failure or an interrupt); a journal of an earlier kill stays."""
        self._discard_staged()
        self._remove_empty()

    def __enter__(self) -> OutputStage:
        self._discard_staged()
        _make_dirs(self.root)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()

    def _discard_staged(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        if self.folder.is_dir():
            for part in self.folder.glob(f".{JOURNAL}.*.part"):  # a journal write that was killed
                part.unlink(missing_ok=True)

    def _remove_empty(self) -> None:
        for d in (self.folder, self.folder.parent):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty


def _make_dirs(path: Path, attempts: int = 20) -> None:
    """``mkdir -p`` that survives another rank removing the shared, momentarily empty staging base meanwhile.

    Each rank removes ``OUT/.mridiff-partial`` when it is empty after a commit (:meth:`OutputStage._remove_empty`);
    if that happens between creating the base and creating this input's folder in it, ``mkdir`` fails with
    ``FileNotFoundError``. Creating the chain again is then correct: the base is only ever removed while empty.
    """
    for _ in range(attempts - 1):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    path.mkdir(parents=True, exist_ok=True)


def _inside(rel: Any) -> bool:
    """A journal entry is a relative path that stays inside the output directory."""
    return isinstance(rel, str) and bool(rel) and not Path(rel).is_absolute() and ".." not in Path(rel).parts


def recover_all(out_dir: Path) -> None:
    """Delete the staged files of every input a killed run left in ``out_dir`` (journals stay, see above).

    Also removes the temporary files of a killed ``metrics.json`` write. Call with :func:`lock_output_dir` held.
    """
    base = out_dir / STAGING_DIR
    if base.is_dir():
        for folder in base.iterdir():
            if folder.is_dir():
                OutputStage(out_dir, folder.name).recover()
    for part in out_dir.glob(".metrics.json.*.part"):
        part.unlink(missing_ok=True)

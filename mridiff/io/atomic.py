"""Atomic output files: write to a temporary file in the same directory, then rename.

A crash, a full disk or Ctrl-C never leaves a partial output behind, and an
existing output is only replaced when the caller allows it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mridiff.errors import InputError


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Check that ``path`` may be written, before any work is done.

    Args:
        path: The output file.
        overwrite: Whether an existing file may be replaced.

    Returns:
        The path as a :class:`Path`.

    Raises:
        InputError: If the file exists and ``overwrite`` is false, or its directory cannot be created or written.

    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise InputError(out, "output already exists", "pass --overwrite to replace it")
    if out.is_dir():
        raise InputError(out, "output path is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out.parent, f"cannot create output directory: {exc.strerror}") from None
    if not os.access(out.parent, os.W_OK):
        raise InputError(out.parent, "output directory is not writable")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Args:
        path: The final output file.
        overwrite: Whether an existing file may be replaced.

    Yields:
        A temporary path in the same directory (so the rename is atomic on POSIX).

    """
    out = check_writable(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if out.exists() and not overwrite:
            raise InputError(out, "output appeared while writing", "pass --overwrite to replace it")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite)

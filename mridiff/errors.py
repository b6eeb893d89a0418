"""User-facing error type.

Anything a user can cause (a bad file, a bad flag, an existing output) raises
:class:`InputError`. The CLI turns it into one line on stderr and exit code 2,
never a traceback. The lower layers raise ``ValueError`` instead, which the commands
turn into an :class:`InputError` with :func:`user_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike


class InputError(Exception):
    """A problem with the user's input, reported as one line without a traceback.

    Args:
        path: The file or directory concerned, or ``None`` when no file is involved.
        problem: What is wrong, in plain words.
        hint: What the user can do about it (optional).

    """

    def __init__(self, path: str | PathLike[str] | None = None, problem: str = "", hint: str | None = None,
                 *, message: str | None = None) -> None:
        # ``message=`` lets torch's DataLoader re-raise an InputError from a worker (it calls exc_type(message=...)).
        self.path = None if path is None else str(path)
        self.problem = problem if message is None else message
        self.hint = hint
        super().__init__(self.message())

    def message(self) -> str:
        """Return the single-line message shown to the user."""
        where = f"{self.path}: " if self.path else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.problem}{tail}".replace("\n", " ")


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM) turned into an exception so that cleanup runs, like Ctrl-C.

    Args:
        signum: The signal received; the CLI exits with ``128 + signum`` (143 for SIGTERM), as a shell would.

    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def user_errors(path: str | PathLike[str] | None = None) -> Iterator[None]:
    """Turn a ``ValueError`` raised inside (the library's "bad input" signal) into an :class:`InputError`.

    The layers below the commands (physics, tasks, the sampling API) raise ``ValueError`` for input they cannot
    work with and know nothing of the command line; the command line wraps its work in this, so such a problem
    reaches the user as one line naming ``path``.
    """
    try:
        yield
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(path, (str(exc).strip().splitlines() or [type(exc).__name__])[0]) from exc

"""User-facing error type.

Anything a user can cause (a bad file, a bad flag, an existing output) raises
:class:`InputError`. The CLI turns it into one line on stderr and exit code 2,
never a traceback. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations

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

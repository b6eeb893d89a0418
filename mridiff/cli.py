"""The ``mridiff`` command: thin sub-commands over the Python API.

User errors (bad files, bad flags, existing outputs) print one line on stderr and exit with status 2;
there is no traceback for them. Warnings print as one line each. ``--help`` of every sub-command shows the
defaults; ``mridiff --version`` prints the version.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from mridiff import __version__
from mridiff.commands import audit, augment, calibrate, demo, evaluate, info, prepare, reconstruct, superres, train
from mridiff.commands.common import EXIT_USER_ERROR
from mridiff.errors import InputError, Interrupted, user_errors


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    text = f"mridiff: warning: {str(message).splitlines()[0]}"
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # above a running progress bar, not spliced into it
        tqdm.tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


def _with_default(action: argparse.Action) -> None:
    """Append ``(default: X)`` to an option's help unless it has no real default or already names it."""
    default = action.default
    if default is None or default is False or default == [] or argparse.SUPPRESS in (default, action.help):
        return  # (identity for False: a default of 0 is a real default)
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):  # noqa: SLF001 - no public names
        return
    text = action.help or ""
    if "default" not in text:
        action.help = f"{text} (default: %(default)s)".strip()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other user error, and help shows defaults."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add an argument as argparse does, then document its default in the help."""
        action = super().add_argument(*args, **kwargs)
        _with_default(action)
        return action

    def error(self, message: str) -> Any:
        raise InputError(None, f"{self.prog}: {message}")


def torch_oom() -> type[BaseException]:
    """``torch.cuda.OutOfMemoryError`` if torch is already imported, else an exception nothing raises."""
    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else _NeverRaisedError


class _NeverRaisedError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = _Parser(prog="mridiff", description="Conditional diffusion models for MRI.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"mridiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for module in (train, reconstruct, calibrate, evaluate, superres, augment, audit, demo, info, prepare):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    warnings.showwarning = _one_line_warning
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric|torch")
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        func: Callable[[argparse.Namespace], int] = args.func
        with user_errors():  # a ValueError from the library is a problem with the input, shown in one line
            return func(args)
    except InputError as exc:
        print(f"mridiff: error: {exc.message()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where a command turns it into Interrupted
        print("mridiff: interrupted", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Interrupted) else 130
    except OSError as exc:  # disk full, permission denied while writing: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mridiff: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except torch_oom() as exc:
        print(f"mridiff: error: out of GPU memory even at batch size 1 ({str(exc).splitlines()[0][:120]}); "
              "use --device cpu or a smaller input", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers for the ``mridiff`` sub-commands."""

from __future__ import annotations

import argparse

EXIT_USER_ERROR = 2


def positive_int(text: str) -> int:
    """Argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value

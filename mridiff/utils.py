"""Small helpers every layer may use: per-sample broadcasting and string-valued choices.

This module imports nothing from mridiff, so the physics layer at the bottom can use it too.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

import torch

E = TypeVar("E", bound=Enum)


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample ``values`` ``(B,)`` to ``(B, 1, ..., 1)`` on ``like``'s device, to broadcast against it.

    Args:
        values: One value per batch element, shape ``(B,)``.
        like: A batched tensor ``(B, ...)``.

    Returns:
        ``values`` reshaped to ``like.ndim`` dimensions.

    """
    return values.to(like.device).reshape(-1, *([1] * (like.ndim - 1)))


def parse_choice(kind: type[E], value: str | E, what: str) -> E:
    """The member of a string-valued enum named by ``value`` (a YAML or CLI string, or the member itself).

    Raises:
        ValueError: For a value that is not one of the enum's, naming the choices.

    """
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}") from None

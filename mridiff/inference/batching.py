"""Run work over chunks of slices, halving the chunk on CUDA out-of-memory instead of dying."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def run_chunked(items: Sequence[T], fn: Callable[[Sequence[T]], list[R]], batch_size: int) -> list[R]:
    """Apply ``fn`` to consecutive chunks of ``items``; on ``torch.cuda.OutOfMemoryError`` retry smaller.

    Args:
        items: the work items (e.g. slice indices).
        fn: processes one chunk and returns one result per item.
        batch_size: the first chunk size to try.

    Returns:
        One result per item, in order.

    Raises:
        torch.cuda.OutOfMemoryError: if even a chunk of one item does not fit.

    """
    results: list[R] = []
    size = max(1, batch_size)
    start = 0
    while start < len(items):
        chunk = items[start : start + size]
        try:
            out = fn(chunk)
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            size = max(1, size // 2)
            warnings.warn(f"GPU out of memory; retrying with a batch of {size} slices", RuntimeWarning, stacklevel=2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        results.extend(out)
        start += len(chunk)
    return results

"""Per-sample noise: every sample draws from its own stream, keyed by integers such as (seed, slice, sample).

Batched sampling with one shared generator makes a slice's noise depend on which slices share its batch, so the
batch size, or halving it after a GPU out-of-memory error, would change results. Here sample ``i`` of a batch
draws x_T and every later step's noise from a generator of its own, so it gets the same numbers whatever batch
it runs in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mridiff.diffusion.samplers import complex_randn


def noise_seed(*key: int) -> int:
    """The seed of the stream named by ``key`` (non-negative integers; independent streams for different keys)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


class SampleNoise:
    """Independent CPU noise streams, one per sample of a batch.

    Args:
        seeds: one seed per sample (e.g. :func:`noise_seed` of ``(seed, slice index, sample index)``).

    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def draw(self, like: torch.Tensor) -> torch.Tensor:
        """Standard Gaussian noise shaped like ``like`` ``(B, ...)`` (B = number of seeds), on ``like``'s device.

        Each sample's numbers come from its own stream, drawn on the CPU, so they do not depend on the batch or
        the device.
        """
        if like.shape[0] != len(self.generators):
            raise ValueError(f"{len(self.generators)} noise streams for a batch of {like.shape[0]}")
        return torch.cat([complex_randn(like[i : i + 1], g) for i, g in enumerate(self.generators)])

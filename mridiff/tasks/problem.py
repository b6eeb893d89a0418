"""The inverse problem every task hands to the reverse loop: operator, measurements, condition and scales.

Reconstruction, super-resolution and augmentation differ only in how they fill this object (see
``docs/interfaces.md``); the loop, the sampling pipeline and the validation in training all take it as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

from mridiff.physics.operators import Operator

Example = dict[str, torch.Tensor]
ExampleFn = Callable[[np.ndarray, "np.ndarray | None", np.random.Generator], Example]


class MaskSettings(Protocol):
    """What a task needs to draw its training degradations (``RunConfig.masks`` satisfies it)."""

    kinds: list[str]
    accelerations: list[int]
    sr_scales: list[int]


@dataclass
class InverseProblem:
    """A batch of B normalised inverse problems ``y = A x + n``.

    Each slice is divided by its own ``scale`` (the 99th magnitude percentile of its condition, or 1), so the
    network sees images of the size it was trained on; outputs are multiplied back by ``scale``.

    Attributes:
        operator: The forward operator ``A`` for the batch, or ``None`` (augmentation: nothing is measured).
        y: Measurements divided by ``scale``, shaped like ``operator.forward(x)``; ``None`` without an operator.
        cond: The network's condition, complex64 ``(B, H, W)`` (A^H y for recon, the sinc-upsampled image for
            SR), or ``None`` for an unconditional network.
        scale: Per-slice normalisation factors, float32 ``(B,)``.
        noise_var: Per-slice noise variance of ``y`` per real component, in normalised units, float32 ``(B,)``;
            ``None`` when unknown (only soft data consistency uses it).
        target: The normalised ground truth, complex64 ``(B, H, W)``, when one exists (training, retrospective).
        image_shape: ``(H, W)`` of the diffusion state; taken from ``cond`` or ``target`` when not given.

    """

    operator: Operator | None
    y: torch.Tensor | None
    cond: torch.Tensor | None
    scale: torch.Tensor
    noise_var: torch.Tensor | None = None
    target: torch.Tensor | None = None
    image_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.operator is None) != (self.y is None):
            raise ValueError("an inverse problem needs both an operator and measurements, or neither")
        if self.image_shape is None:
            like = self.cond if self.cond is not None else self.target
            if like is None:
                raise ValueError("image_shape is needed when there is neither a condition nor a target")
            self.image_shape = (int(like.shape[-2]), int(like.shape[-1]))

    @property
    def batch_size(self) -> int:
        """B, the number of problems."""
        return int(self.scale.shape[0])

    def repeat(self, k: int) -> InverseProblem:
        """Each problem ``k`` times in a row (``repeat_interleave``): K posterior samples share one measurement."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(k, 0)

        op = None if self.operator is None else self.operator.repeat_interleave(k)
        return replace(self, operator=op, y=rep(self.y), cond=rep(self.cond), scale=self.scale.repeat_interleave(k, 0),
                       noise_var=rep(self.noise_var), target=rep(self.target))

    def to(self, device: torch.device | str) -> InverseProblem:
        """The same problems with every tensor on ``device`` (``scale`` stays on the CPU, for rescaling outputs)."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        op = None if self.operator is None else self.operator.to(device)
        return replace(self, operator=op, y=move(self.y), cond=move(self.cond), noise_var=move(self.noise_var),
                       target=move(self.target))

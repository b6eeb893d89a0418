"""Super-resolution task: the normalised inverse problem of a batch of low-resolution images.

Operator: :class:`~mridiff.physics.operators.KspaceCrop` (MRI: the LR image is the centre of k-space) or
:class:`~mridiff.physics.operators.AreaDownsample` (block means). Condition: the LR image sinc-interpolated to the
HR grid (for ``kspace``, exactly A^H y). Data consistency keeps the measurement exactly. Training simulates the LR
image of a full-resolution slice and calls the same :func:`sr_problem` as inference, so the network is trained on
the conditions it later sees.
"""

from __future__ import annotations

import numpy as np
import torch

from mridiff.data.transforms import percentile_scale
from mridiff.physics.grids import lowres_operator, measurement, simulate_lowres, sinc_upsample
from mridiff.tasks.problem import Example, InverseProblem
from mridiff.tasks.recon import full_image
from mridiff.utils import per_sample


def sr_problem(lr: torch.Tensor, factor: int, lr_model: str = "kspace",
               target: torch.Tensor | None = None) -> InverseProblem:
    """Normalised SR problems for complex LR images.

    Args:
        lr: complex64 LR images ``(B, h, w)``.
        factor: upsampling factor.
        lr_model: ``"kspace"`` or ``"image"`` (see :mod:`mridiff.physics.grids`).
        target: the HR images ``(B, f h, f w)`` when known (training); normalised like the problem.

    Returns:
        The problems, each slice divided by its condition's 99th magnitude percentile.

    """
    h, w = lr.shape[-2:]
    operator = lowres_operator(factor, (h * factor, w * factor), lr_model)
    cond = sinc_upsample(lr, factor, lr_model)
    scale = torch.tensor([percentile_scale(c) for c in cond], dtype=torch.float32)
    y = measurement(lr, factor, lr_model)
    return InverseProblem(operator=operator, y=y / per_sample(scale, y), cond=cond / per_sample(scale, cond),
                          scale=scale, target=None if target is None else target / per_sample(scale, target))


def training_example(
    full_kspace: np.ndarray, sens: np.ndarray | None, rng: np.random.Generator, *, scales: list[int]
) -> Example:
    """A super-resolution training pair from a fully sampled slice, with a random scale from ``scales``."""
    k = torch.from_numpy(np.ascontiguousarray(full_kspace)).to(torch.complex64)
    maps = torch.from_numpy(sens).to(torch.complex64) if sens is not None else None
    image = full_image(k, maps).unsqueeze(0)
    factor = scales[int(rng.integers(len(scales)))]
    problem = sr_problem(simulate_lowres(image, factor, "kspace"), factor, "kspace", target=image)
    assert problem.target is not None and problem.cond is not None
    return {"target": problem.target[0], "cond": problem.cond[0]}


def validation_problem(batch: Example) -> InverseProblem:
    """The problem of a collated batch of examples: condition and target only (their factors may differ)."""
    target = batch["target"]
    return InverseProblem(operator=None, y=None, cond=batch["cond"], scale=torch.ones(target.shape[0]),
                          target=target)

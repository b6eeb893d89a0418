"""The one reverse loop where network, schedule, sampler and forward operator meet.

    for t in timesteps:
        pred = net(x_t, cond, t)
        x0   = schedule.predict_x0(x_t, pred, t)
        x0   = data_consistency(operator, x0, y)      # skipped for augmentation
        x_t  = sampler.step(x_t, x0, t, t_prev)

Every task (reconstruction, super-resolution, augmentation) samples through :func:`reverse_diffusion`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mridiff.diffusion.samplers import Sampler, complex_randn
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.physics.consistency import DC_MODES, apply_consistency
from mridiff.physics.operators import Operator

Denoiser = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ConsistencySettings:
    """How the loop enforces the measurement.

    Attributes:
        mode: ``"hard"``, ``"cg"``, ``"soft"`` or ``"none"``.
        noise_var: k-space noise variance in normalised units (soft mode).
        cg_iters: conjugate-gradient iterations per step (cg mode; hard mode on SENSE runs to ``cg_tol``).
        cg_tol: relative residual at which CG stops.

    """

    mode: str = "hard"
    noise_var: float = 0.0
    cg_iters: int = 5
    cg_tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.mode not in DC_MODES:
            raise ValueError(f"unknown data-consistency mode {self.mode!r}; choose one of {DC_MODES}")


@torch.no_grad()
def reverse_diffusion(
    net: Denoiser,
    schedule: NoiseSchedule,
    sampler: Sampler,
    shape_like: torch.Tensor,
    cond: torch.Tensor | None = None,
    operator: Operator | None = None,
    y: torch.Tensor | None = None,
    consistency: ConsistencySettings | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "sampling",
    x_init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the reverse process from pure noise to an image.

    Args:
        net: denoiser ``net(x_t, cond, t) -> prediction`` (epsilon or v, as the schedule says).
        schedule: the noise schedule the network was trained with.
        sampler: DDPM or DDIM update rule.
        shape_like: a tensor with the state's shape, dtype and device, e.g. complex64 (B, H, W).
        cond: condition for the network, or ``None``.
        operator: forward operator for data consistency, or ``None`` (no measurement).
        y: measured data for ``operator`` (normalised like the state).
        consistency: data-consistency settings; defaults to hard projection.
        generator: CPU random generator; the same seed gives the same output.
        progress: show a progress bar over steps.
        desc: progress-bar label.
        x_init: the starting noise x_T, shaped like ``shape_like``; drawn from ``generator`` when ``None``.
            Passing per-sample noise makes deterministic samplers (DDIM, eta = 0) give each sample the same
            result whatever batch it runs in.

    Returns:
        The final x0, shaped like ``shape_like``; data-consistent when an operator is given.

    """
    settings = consistency or ConsistencySettings()
    use_dc = operator is not None and y is not None and settings.mode != "none"
    x_t = complex_randn(shape_like, generator) if x_init is None else x_init.to(shape_like)
    batch = shape_like.shape[0]
    for t, t_prev in tqdm(sampler.pairs(), desc=desc, disable=not progress, leave=False):
        t_batch = torch.full((batch,), t, dtype=torch.long, device=shape_like.device)
        pred = net(x_t, cond, t_batch).to(x_t.dtype)
        x0 = schedule.predict_x0(x_t, pred, t_batch)
        if use_dc:
            assert operator is not None and y is not None
            x0 = apply_consistency(
                settings.mode,
                operator,
                x0,
                y,
                noise_var=settings.noise_var,
                prior_var=schedule.x0_prior_variance(t),
                cg_iters=settings.cg_iters,
                cg_tol=settings.cg_tol,
            )
        x_t = sampler.step(x_t, x0, t, t_prev, generator)
    return x_t

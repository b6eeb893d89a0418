"""The one reverse loop where network, schedule, sampler and inverse problem meet.

    for t in timesteps:
        pred = net(x_t, cond, t)
        x0   = schedule.predict_x0(x_t, pred, t)
        x0   = dc(operator, x0, y)                    # skipped when nothing is measured (augmentation)
        x_t  = sampler.step(x_t, x0, t, t_prev, noise)

Every task (reconstruction, super-resolution, augmentation) samples through :func:`reverse_diffusion`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mridiff.diffusion.noise import SampleNoise
from mridiff.diffusion.samplers import Sampler, complex_randn
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.physics.consistency import DataConsistency
from mridiff.tasks.problem import InverseProblem

Denoiser = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


@torch.no_grad()
def reverse_diffusion(
    net: Denoiser,
    schedule: NoiseSchedule,
    sampler: Sampler,
    problem: InverseProblem,
    dc: DataConsistency,
    x_init: torch.Tensor,
    *,
    noise: SampleNoise | None = None,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run the reverse process from pure noise ``x_init`` to an image.

    Args:
        net: denoiser ``net(x_t, cond, t) -> prediction`` (epsilon or v, as the schedule says).
        schedule: the noise schedule the network was trained with.
        sampler: the update rule; reset before the run.
        problem: the (normalised) problems of the batch, on the state's device; ``problem.operator`` is ``None``
            when nothing is measured.
        dc: the data-consistency step (used when the problem has an operator).
        x_init: x_T, the starting noise, e.g. complex64 ``(B, H, W)``: its shape, dtype and device are the state's.
        noise: per-sample noise streams for samplers that add noise after x_T (DDPM, DDIM with eta > 0); drawn
            from torch's global generator when ``None``.
        on_step: called after every network evaluation (progress bars).

    Returns:
        The final x0, shaped like ``x_init``; data-consistent when the problem has an operator.

    """
    sampler.reset()
    x_t = x_init
    batch = x_t.shape[0]
    for t, t_prev in sampler.pairs():
        t_batch = torch.full((batch,), t, dtype=torch.long, device=x_t.device)
        pred = net(x_t, problem.cond, t_batch).to(x_t.dtype)
        x0 = schedule.predict_x0(x_t, pred, t_batch)
        if problem.operator is not None and problem.y is not None:
            x0 = dc(problem.operator, x0, problem.y, prior_var=schedule.x0_prior_variance(t),
                    noise_var=problem.noise_var)
        step_noise = None
        if sampler.needs_noise(t_prev):
            step_noise = noise.draw(x_t) if noise is not None else complex_randn(x_t)
        x_t = sampler.step(x_t, x0, t, t_prev, step_noise)
        if on_step is not None:
            on_step()
    return x_t

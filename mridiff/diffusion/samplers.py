"""Samplers: how to move x_t to x_{t_prev} given an estimate of x0.

Each sampler takes the x0 estimate *after* data consistency and re-derives the noise from it, so that the
measurement steers the trajectory (as in DDS and score-MRI). Samplers know the schedule's tables, never
the network or the MRI physics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from mridiff.diffusion.schedules import NoiseSchedule

SAMPLER_NAMES: tuple[str, ...] = ("ddpm", "ddim")


def complex_randn(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gaussian noise shaped like ``like``; complex tensors get unit variance per real component.

    (``torch.randn`` on a complex dtype gives variance 1/2 per component; training and sampling must agree, so
    both use this function.) With a generator the noise is drawn on the CPU, so a seed gives the same numbers
    on every device; without one it is drawn on ``like``'s device.
    """
    device = "cpu" if generator is not None else like.device
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    shape = (*like.shape, 2) if like.is_complex() else tuple(like.shape)
    noise = torch.randn(shape, generator=generator, dtype=real_dtype, device=device)
    if like.is_complex():
        noise = torch.view_as_complex(noise)
    return noise.to(like.device)


class Sampler(ABC):
    """A reverse-process update rule over a descending list of timesteps."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    @abstractmethod
    def timesteps(self) -> list[int]:
        """Timesteps visited, in descending order."""

    def pairs(self) -> list[tuple[int, int]]:
        """(t, t_prev) pairs; the last t_prev is -1, the clean image."""
        ts = self.timesteps()
        return list(zip(ts, [*ts[1:], -1], strict=True))

    @property
    def num_steps(self) -> int:
        """Number of network evaluations per sample (NFE)."""
        return len(self.timesteps())

    @abstractmethod
    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Return x_{t_prev} from x_t and an x0 estimate (same shape and dtype as x_t)."""


class DDPMSampler(Sampler):
    """Ancestral DDPM sampling (Ho et al. 2020) with the posterior variance, over all T steps."""

    def timesteps(self) -> list[int]:
        """All training timesteps, T-1 down to 0."""
        return list(range(self.schedule.num_train_timesteps - 1, -1, -1))

    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Sample q(x_{t_prev} | x_t, x0)."""
        abar_t = float(self.schedule.alpha_bar(t)[0])
        abar_prev = float(self.schedule.alpha_bar(t_prev)[0])
        alpha = abar_t / abar_prev
        beta = 1.0 - alpha
        coef_x0 = abar_prev**0.5 * beta / (1.0 - abar_t)
        coef_xt = alpha**0.5 * (1.0 - abar_prev) / (1.0 - abar_t)
        mean = coef_x0 * x0 + coef_xt * x_t
        if t_prev < 0:
            return mean
        var = beta * (1.0 - abar_prev) / (1.0 - abar_t)
        return mean + var**0.5 * complex_randn(x_t, generator)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) over ``num_steps`` evenly spaced timesteps; ``eta = 0`` is deterministic.

    Args:
        schedule: the noise schedule.
        num_steps: number of network evaluations S.
        eta: stochasticity, 0 (DDIM) to 1 (DDPM-like).

    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = 50, eta: float = 0.0) -> None:
        super().__init__(schedule)
        if not 1 <= num_steps <= schedule.num_train_timesteps:
            raise ValueError(f"num_steps must be in [1, {schedule.num_train_timesteps}], got {num_steps}")
        self._num_steps = num_steps
        self.eta = eta

    def timesteps(self) -> list[int]:
        """Evenly spaced ("trailing") timesteps from T-1 down, so the first step starts from pure noise."""
        total = self.schedule.num_train_timesteps
        ts = torch.linspace(total - 1, 0, self._num_steps).round().long().tolist()
        return sorted(set(ts), reverse=True)

    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The DDIM update with the noise re-derived from the (data-consistent) x0."""
        abar_t = float(self.schedule.alpha_bar(t)[0])
        abar_prev = float(self.schedule.alpha_bar(t_prev)[0])
        if t_prev < 0:
            return x0
        eps = (x_t - abar_t**0.5 * x0) / (1.0 - abar_t) ** 0.5
        sigma = self.eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)) ** 0.5
        direction = max(1.0 - abar_prev - sigma**2, 0.0) ** 0.5
        out = abar_prev**0.5 * x0 + direction * eps
        if sigma > 0:
            out = out + sigma * complex_randn(x_t, generator)
        return out


def make_sampler(name: str, schedule: NoiseSchedule, steps: int | None = None, eta: float = 0.0) -> Sampler:
    """Build a sampler by name (``"ddpm"`` or ``"ddim"``).

    Args:
        name: sampler name.
        schedule: the noise schedule.
        steps: DDIM step count (ignored by DDPM, which always takes T steps).
        eta: DDIM stochasticity.

    """
    if name == "ddpm":
        return DDPMSampler(schedule)
    if name == "ddim":
        return DDIMSampler(schedule, steps or 50, eta)
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLER_NAMES}")

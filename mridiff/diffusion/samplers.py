"""Samplers: how to move x_t to x_{t_prev} given an estimate of x0.

Each sampler takes the x0 estimate *after* data consistency and re-derives the noise from it, so that the
measurement steers the trajectory (as in DDS and score-MRI). Samplers know the schedule's tables, never
the network or the MRI physics.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from enum import Enum

import torch

from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.utils import parse_choice


class SamplerName(str, Enum):
    """Samplers by name (``str``-valued, so YAML and CLI strings compare equal)."""

    DDPM = "ddpm"
    DDIM = "ddim"
    DPMPP2M = "dpmpp2m"


SAMPLER_NAMES: tuple[str, ...] = tuple(m.value for m in SamplerName)


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
    """A reverse-process update rule over a descending list of timesteps.

    The loop calls :meth:`reset` before every run, then :meth:`step` once per pair of :meth:`pairs`, handing it
    standard Gaussian noise shaped like x_t whenever :meth:`needs_noise` says so (drawn per sample by the caller,
    so a sample's result does not depend on its batch). A multistep sampler keeps its history (e.g. the previous
    x0) on the instance and clears it in :meth:`reset`.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    def reset(self) -> None:  # noqa: B027 - an optional hook: only multistep samplers hold state
        """Forget any state of a previous run (stateless samplers have none)."""

    def needs_noise(self, t_prev: int) -> bool:
        """Whether :meth:`step` towards ``t_prev`` takes noise (default: never)."""
        return False

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
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return x_{t_prev} from x_t and an x0 estimate (same shape and dtype as x_t).

        Args:
            x_t: the current state.
            x0: the (data-consistent) estimate of the clean image.
            t: the current timestep.
            t_prev: the next timestep (-1: the clean image).
            noise: standard Gaussian noise shaped like ``x_t`` (:func:`complex_randn`) where :meth:`needs_noise`
                is true; drawn from torch's global generator when not given.

        """


class DDPMSampler(Sampler):
    """Ancestral DDPM sampling (Ho et al. 2020) with the posterior variance, over all T steps."""

    def timesteps(self) -> list[int]:
        """All training timesteps, T-1 down to 0."""
        return list(range(self.schedule.num_train_timesteps - 1, -1, -1))

    def needs_noise(self, t_prev: int) -> bool:
        """Every step but the last adds noise."""
        return t_prev >= 0

    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, noise: torch.Tensor | None = None
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
        return mean + var**0.5 * (complex_randn(x_t) if noise is None else noise)


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

    def needs_noise(self, t_prev: int) -> bool:
        """Only stochastic DDIM (eta > 0) adds noise, and not on the last step."""
        return self.eta > 0 and t_prev >= 0

    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, noise: torch.Tensor | None = None
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
            out = out + sigma * (complex_randn(x_t) if noise is None else noise)
        return out


class DPMSolverPP2M(DDIMSampler):
    """DPM-Solver++(2M) (Lu et al. 2022), a second-order multistep solver of the probability-flow ODE.

    It works on the x0 (data) prediction, so data consistency stays where it is for DDIM: the loop hands it the
    data-consistent x0 and the solver extrapolates linearly in log-SNR time from the last two of them. Its first
    and last updates are exactly DDIM's; in between, with the same number of network calls, it follows the ODE
    more closely, which is what lets fewer calls keep DDIM-50's quality. The last step returns the
    data-consistent x0 itself (no extrapolation), so measured k-space is kept exactly. Deterministic, like DDIM
    with ``eta = 0``.

    Args:
        schedule: the noise schedule.
        num_steps: number of network evaluations S.

    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = 20) -> None:
        super().__init__(schedule, num_steps, eta=0.0)
        self._history: tuple[int, torch.Tensor] | None = None

    def _lam(self, t: int) -> float:
        """log(alpha_t / sigma_t), the half log-SNR."""
        abar = float(self.schedule.alpha_bar(t)[0])
        return 0.5 * (math.log(abar) - math.log1p(-abar))

    def reset(self) -> None:
        """Forget the previous run's x0."""
        self._history = None

    def step(
        self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One multistep update; the history restarts whenever the first timestep comes round again."""
        if t == self.timesteps()[0]:
            self._history = None
        previous, self._history = self._history, (t, x0)
        if t_prev < 0:
            return x0
        abar_t = float(self.schedule.alpha_bar(t)[0])
        abar_prev = float(self.schedule.alpha_bar(t_prev)[0])
        h = self._lam(t_prev) - self._lam(t)
        d = x0
        # The last update (into the smallest timestep) is first order, as in diffusers' ``lower_order_final``:
        # its log-SNR step is several times the previous one, and extrapolating that far overshoots.
        if previous is not None and t_prev != self.timesteps()[-1]:
            t_last, x0_last = previous
            r = (self._lam(t) - self._lam(t_last)) / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_last
        ratio = ((1.0 - abar_prev) / (1.0 - abar_t)) ** 0.5
        return ratio * x_t - abar_prev**0.5 * math.expm1(-h) * d


def make_sampler(name: str | SamplerName, schedule: NoiseSchedule, steps: int | None = None,
                 eta: float = 0.0) -> Sampler:
    """Build a fresh sampler by name (``"ddpm"``, ``"ddim"`` or ``"dpmpp2m"``).

    Args:
        name: sampler name.
        schedule: the noise schedule.
        steps: step count of DDIM (``None``: 50) and DPM-Solver++ (``None``: 20). DDPM always takes all T steps,
            so it accepts only ``None`` or T.
        eta: DDIM stochasticity.

    Raises:
        ValueError: for an unknown name, or DDPM with a step count other than T (never silently ignored).

    """
    kind = parse_choice(SamplerName, name, "sampler")
    if kind is SamplerName.DDPM:
        total = schedule.num_train_timesteps
        if steps is not None and steps != total:
            raise ValueError(f"the DDPM sampler always takes all {total} steps of its schedule, not {steps} "
                             "(leave --steps out, or use --sampler ddim)")
        return DDPMSampler(schedule)
    if kind is SamplerName.DDIM:
        return DDIMSampler(schedule, steps or 50, eta)
    return DPMSolverPP2M(schedule, steps or 20)

"""Noise schedules: the beta / alpha-bar tables and the conversions between x0, epsilon and v.

The tables come from MONAI's scheduler registry (``linear_beta``, ``cosine``); everything else here is the
textbook algebra of Ho et al. (2020) and Salimans & Ho (2022, v-prediction). Nothing here knows about MRI or
networks, and nothing clips x0: normalised MRI magnitudes exceed [-1, 1].
"""

from __future__ import annotations

from enum import Enum

import torch
from monai.networks.schedulers import Scheduler

from mridiff.utils import parse_choice, per_sample


class ScheduleKind(str, Enum):
    """Beta schedules by name (``str``-valued, so YAML strings compare equal)."""

    LINEAR = "linear"
    COSINE = "cosine"


class Prediction(str, Enum):
    """What the network predicts."""

    EPSILON = "epsilon"
    V = "v"


SCHEDULE_KINDS: dict[str, str] = {"linear": "linear_beta", "cosine": "cosine"}
PREDICTION_TYPES: tuple[str, ...] = tuple(m.value for m in Prediction)


class NoiseSchedule:
    """Forward-process tables and prediction-type algebra.

    Args:
        num_train_timesteps: T, the number of training timesteps.
        kind: ``"linear"`` or ``"cosine"``.
        prediction: what the network predicts, ``"epsilon"`` (L_simple) or ``"v"``.
        beta_start: first beta of the linear schedule.
        beta_end: last beta of the linear schedule.

    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        kind: str | ScheduleKind = "linear",
        prediction: str | Prediction = "epsilon",
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
    ) -> None:
        kind = parse_choice(ScheduleKind, kind, "schedule").value
        prediction = parse_choice(Prediction, prediction, "prediction type").value
        args: dict[str, float] = {"beta_start": beta_start, "beta_end": beta_end} if kind == "linear" else {}
        tables = Scheduler(num_train_timesteps, SCHEDULE_KINDS[kind], **args)
        self.num_train_timesteps = num_train_timesteps
        self.kind = kind
        self.prediction = prediction
        # float64 tables: alpha-bar near 1 loses precision in float32 when taking 1 - abar.
        self.alphas_cumprod = tables.alphas_cumprod.to(torch.float64).clone()

    def alpha_bar(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """Return alpha-bar at integer timesteps; ``t = -1`` means the clean image (alpha-bar = 1).

        Args:
            t: timestep(s), int or (B,) long tensor.
            like: a tensor whose device and (real) dtype the result takes, broadcastable against it.

        Returns:
            alpha-bar values, shape (B, 1, ..., 1) when ``like`` is given, else (B,).

        """
        # The table lives on the CPU; index it there whatever device t is on, then move the result.
        t_tensor = torch.as_tensor(t).reshape(-1).to(device="cpu", dtype=torch.long)
        table = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        values = table[t_tensor + 1]
        if like is None:
            return values
        real_dtype = like.real.dtype if like.is_complex() else like.dtype
        values = values.to(device=like.device, dtype=real_dtype)
        return per_sample(values, like)

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x0): sqrt(abar) x0 + sqrt(1 - abar) eps. Works for real and complex tensors."""
        abar = self.alpha_bar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def training_target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Return what the network should predict: eps, or v = sqrt(abar) eps - sqrt(1 - abar) x0."""
        if self.prediction == "epsilon":
            return eps
        abar = self.alpha_bar(t, x0)
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0

    def predict_x0(self, x_t: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Turn a network prediction at x_t into an estimate of x0 (no clipping)."""
        abar = self.alpha_bar(t, x_t)
        if self.prediction == "epsilon":
            return (x_t - (1 - abar).sqrt() * pred) / abar.sqrt()
        return abar.sqrt() * x_t - (1 - abar).sqrt() * pred

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by x_t and an (e.g. data-consistent) x0 estimate."""
        abar = self.alpha_bar(t, x_t)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar) at timesteps ``t`` (B,), float64."""
        abar = self.alpha_bar(t)
        return abar / (1.0 - abar).clamp_min(1e-20)

    def min_snr_weight(self, t: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023) for this schedule's prediction type, shape (B,).

        In x0 terms the weight is min(SNR, gamma); an epsilon loss already carries a factor SNR and a v loss a
        factor SNR + 1, so those are divided out. It stops the many nearly clean timesteps, whose x0 target is
        almost the input, from dominating the gradient, which speeds up convergence of short runs.
        """
        snr = self.snr(t)
        clipped = snr.clamp_max(gamma)
        return clipped / snr if self.prediction == "epsilon" else clipped / (snr + 1.0)

    def x0_prior_variance(self, t: int) -> float:
        """Variance of x_t / sqrt(abar) around x0, (1 - abar) / abar: a bound on the x0 estimate's error.

        Soft data consistency weighs the measurement against the network's x0 with this number.
        """
        abar = float(self.alpha_bar(t)[0])
        return (1.0 - abar) / max(abar, 1e-12)

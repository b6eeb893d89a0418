"""One DDPM and one DDIM step with data consistency off equal MONAI's schedulers (tables and update rules)."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from mridiff.diffusion.samplers import DDIMSampler, DDPMSampler
from mridiff.diffusion.schedules import NoiseSchedule


def _state(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, 16, 16, generator=gen), torch.randn(2, 1, 16, 16, generator=gen)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("t", [999, 500, 37, 1])
def test_ddpm_step_equals_monai(kind: str, t: int) -> None:
    ours = NoiseSchedule(1000, kind)
    monai = DDPMScheduler(1000, schedule="linear_beta" if kind == "linear" else "cosine", clip_sample=False)
    x_t, eps = _state(t)
    t_batch = torch.full((2,), t)
    ref = monai.step(eps, t, x_t, generator=torch.Generator().manual_seed(7))[0]
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))  # the draw MONAI makes
    x0 = ours.predict_x0(x_t, eps, t_batch)
    out = DDPMSampler(ours).step(x_t, x0, t, t - 1, noise)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_steps_equal_monai(eta: float) -> None:
    ours = NoiseSchedule(1000, "linear")
    monai = DDIMScheduler(1000, schedule="linear_beta", clip_sample=False, set_alpha_to_one=True)
    monai.set_timesteps(5)
    sampler = DDIMSampler(ours, 5, eta=eta)
    for t in monai.timesteps.tolist():
        t_prev = t - 1000 // 5
        x_t, eps = _state(t)
        ref = monai.step(eps, t, x_t, eta=eta, generator=torch.Generator().manual_seed(3))[0]
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
        x0 = ours.predict_x0(x_t, eps, torch.full((2,), t))
        out = sampler.step(x_t, x0, t, t_prev, noise if sampler.needs_noise(t_prev) else None)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)

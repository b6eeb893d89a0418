import torch

from mridiff.diffusion.samplers import DDIMSampler, DDPMSampler, make_sampler
from mridiff.diffusion.schedules import NoiseSchedule


def test_ddim_timesteps_descend_to_zero() -> None:
    sched = NoiseSchedule(1000)
    s = DDIMSampler(sched, 50)
    ts = s.timesteps()
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 == s.num_steps
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert s.pairs()[-1] == (0, -1)


def test_ddpm_visits_every_step() -> None:
    sched = NoiseSchedule(100)
    assert DDPMSampler(sched).num_steps == 100


def test_ddim_with_exact_x0_is_consistent_with_forward_process() -> None:
    # With the true x0 and eta=0, DDIM maps x_t = sqrt(a_t) x0 + sqrt(1-a_t) eps to sqrt(a_s) x0 + sqrt(1-a_s) eps.
    sched = NoiseSchedule(1000)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 6, 6, dtype=torch.complex64, generator=gen)
    eps = torch.randn(2, 6, 6, dtype=torch.complex64, generator=gen)
    t, s = 700, 400
    x_t = sched.add_noise(x0, eps, torch.tensor([t, t]))
    x_s = DDIMSampler(sched, 10).step(x_t, x0, t, s, None)
    assert torch.allclose(x_s, sched.add_noise(x0, eps, torch.tensor([s, s])), atol=1e-4)


def test_last_step_returns_x0() -> None:
    sched = NoiseSchedule(100)
    x0 = torch.randn(1, 4, 4, dtype=torch.complex64)
    x_t = torch.randn(1, 4, 4, dtype=torch.complex64)
    assert torch.allclose(DDIMSampler(sched, 5).step(x_t, x0, 0, -1, None), x0)
    assert torch.allclose(DDPMSampler(sched).step(x_t, x0, 0, -1, None), x0, atol=1e-5)


def test_ddpm_step_noise_is_seeded() -> None:
    sched = NoiseSchedule(100)
    s = make_sampler("ddpm", sched)
    x = torch.randn(1, 4, 4, dtype=torch.complex64)
    a = s.step(x, x, 50, 49, torch.Generator().manual_seed(3))
    b = s.step(x, x, 50, 49, torch.Generator().manual_seed(3))
    c = s.step(x, x, 50, 49, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)

import pytest
import torch

from mridiff.diffusion.samplers import DDIMSampler, DDPMSampler, SamplerName, complex_randn, make_sampler
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


def test_ddpm_step_takes_the_noise_it_is_given() -> None:
    sched = NoiseSchedule(100)
    s = make_sampler("ddpm", sched)
    x = torch.randn(1, 4, 4, dtype=torch.complex64)
    n1, n2 = (complex_randn(x, torch.Generator().manual_seed(i)) for i in (3, 4))
    assert s.needs_noise(49) and not s.needs_noise(-1)
    assert torch.equal(s.step(x, x, 50, 49, n1), s.step(x, x, 50, 49, n1))
    assert not torch.equal(s.step(x, x, 50, 49, n1), s.step(x, x, 50, 49, n2))
    assert not make_sampler("ddim", sched, 10).needs_noise(5) and make_sampler("ddim", sched, 10, 0.5).needs_noise(5)


def test_ddpm_refuses_a_step_count_it_would_ignore() -> None:
    sched = NoiseSchedule(100)
    assert make_sampler("ddpm", sched).num_steps == make_sampler("ddpm", sched, 100).num_steps == 100
    with pytest.raises(ValueError, match="all 100 steps"):
        make_sampler("ddpm", sched, 50)
    with pytest.raises(ValueError, match="choose one of"):
        make_sampler("euler", sched)
    assert make_sampler(SamplerName.DDIM, sched, 7).num_steps == 7


def _gaussian_ode(sampler_name: str, steps: int, s: float = 0.5) -> float:
    """Relative error of a sampler against the exact probability-flow ODE for data ~ N(0, s^2).

    For Gaussian data E[x0 | x_t] = sqrt(a) s^2 / (a s^2 + 1 - a) x_t, and the ODE maps x_T to
    x_0 = s x_T / sqrt(a_T s^2 + 1 - a_T): a closed form to measure the discretisation error against.
    """
    sched = NoiseSchedule(1000, kind="cosine", prediction="v")
    sampler = make_sampler(sampler_name, sched, steps)
    x = torch.randn(4096, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a_T = float(sched.alpha_bar(sampler.timesteps()[0])[0])
    exact = s * x / (a_T * s**2 + 1 - a_T) ** 0.5
    for t, t_prev in sampler.pairs():
        a = float(sched.alpha_bar(t)[0])
        x0 = a**0.5 * s**2 / (a * s**2 + 1 - a) * x
        x = sampler.step(x, x0, t, t_prev, None)
    return float((x - exact).norm() / exact.norm())


def test_dpm_solver_follows_the_ode_better_than_ddim_with_the_same_calls() -> None:
    assert _gaussian_ode("dpmpp2m", 5) < _gaussian_ode("ddim", 5)
    for steps in (10, 20):
        assert _gaussian_ode("dpmpp2m", steps) < 0.5 * _gaussian_ode("ddim", steps)
    # second order: halving the step size cuts the error by clearly more than DDIM's first-order factor 2
    assert _gaussian_ode("dpmpp2m", 10) / _gaussian_ode("dpmpp2m", 20) > 2.5


def test_dpm_solver_first_step_is_ddim_and_restarts_its_history() -> None:
    sched = NoiseSchedule(1000, kind="cosine")
    dpm, ddim = make_sampler("dpmpp2m", sched, 8), make_sampler("ddim", sched, 8)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 4, dtype=torch.complex64, generator=gen)
    x0 = torch.randn(2, 4, 4, dtype=torch.complex64, generator=gen)
    (t, t_prev), (t2, t2_prev) = dpm.pairs()[:2]
    first = dpm.step(x, x0, t, t_prev, None)
    assert torch.allclose(first, ddim.step(x, x0, t, t_prev, None), atol=1e-5)
    second = dpm.step(first, 0.5 * x0, t2, t2_prev, None)
    assert not torch.allclose(second, ddim.step(first, 0.5 * x0, t2, t2_prev, None), atol=1e-4)
    # a new run (the first timestep again) forgets the previous run's x0
    assert torch.equal(dpm.step(x, x0, t, t_prev, None), first)
    assert torch.allclose(dpm.step(x, x0, 0, -1, None), x0)

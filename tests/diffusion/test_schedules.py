import pytest
import torch

from mridiff.diffusion.schedules import NoiseSchedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_x0_recovered_from_exact_prediction(kind: str, prediction: str) -> None:
    sched = NoiseSchedule(1000, kind, prediction)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 8, 8, dtype=torch.complex64, generator=gen) * 3.0  # beyond [-1, 1]: never clipped
    eps = torch.randn(4, 8, 8, dtype=torch.complex64, generator=gen)
    t = torch.tensor([0, 10, 500, 999])
    x_t = sched.add_noise(x0, eps, t)
    target = sched.training_target(x0, eps, t)
    x0_hat = sched.predict_x0(x_t, target, t)
    assert torch.allclose(x0_hat, x0, atol=1e-2 if kind == "cosine" else 1e-3)
    eps_hat = sched.eps_from_x0(x_t, x0, t)
    assert torch.allclose(eps_hat, eps, atol=1e-3)


def test_tables_come_from_monai_and_are_monotone() -> None:
    from monai.networks.schedulers import DDPMScheduler

    sched = NoiseSchedule(1000, "linear")
    ref = DDPMScheduler(num_train_timesteps=1000, schedule="linear_beta").alphas_cumprod
    assert torch.allclose(sched.alphas_cumprod.float(), ref.float())
    abar = sched.alphas_cumprod
    assert bool((abar[1:] < abar[:-1]).all())
    assert float(sched.alpha_bar(-1)[0]) == 1.0


def test_prior_variance_grows_with_t() -> None:
    sched = NoiseSchedule(100, "cosine")
    assert sched.x0_prior_variance(0) < sched.x0_prior_variance(50) < sched.x0_prior_variance(99)


def test_unknown_names_rejected() -> None:
    with pytest.raises(ValueError):
        NoiseSchedule(10, "quadratic")
    with pytest.raises(ValueError):
        NoiseSchedule(10, "linear", "x0")


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_min_snr_weight_is_min_snr_gamma_in_x0_terms(prediction: str) -> None:
    # Hang et al. 2023: weight * |prediction error|^2 == min(SNR, gamma) * |x0 error|^2 for any error.
    sched = NoiseSchedule(1000, "cosine", prediction)
    gen = torch.Generator().manual_seed(1)
    t = torch.tensor([0, 50, 300, 700, 999])
    x0 = torch.randn(5, 8, 8, dtype=torch.complex128, generator=gen)
    eps = torch.randn(5, 8, 8, dtype=torch.complex128, generator=gen)
    x_t = sched.add_noise(x0, eps, t)
    exact = sched.training_target(x0, eps, t)
    delta = 0.1 * torch.randn(5, 8, 8, dtype=torch.complex128, generator=gen)
    x0_err = (sched.predict_x0(x_t, exact + delta, t) - x0).abs().pow(2).sum(dim=(1, 2))
    weight = sched.min_snr_weight(t, gamma=5.0)
    lhs = weight * delta.abs().pow(2).sum(dim=(1, 2))
    rhs = sched.snr(t).clamp_max(5.0) * x0_err
    assert torch.allclose(lhs, rhs, rtol=1e-6)
    assert float(weight[0]) < float(weight[2])  # nearly clean timesteps are down-weighted

from __future__ import annotations

import pytest
import torch
from conftest import make_coil_maps, make_phantom, random_complex

from mridiff.physics import (
    CG,
    CONSISTENCY,
    DCMode,
    Hard,
    KspaceCrop,
    MaskSpec,
    MultiCoil,
    NoConsistency,
    SingleCoil,
    Soft,
    cg_consistency,
    conjugate_gradient,
    estimate_noise_std,
    fft2c,
    make_consistency,
    make_mask,
    soft_consistency,
)

N = 64


def _multicoil_problem(batch: int = 2, scale: float = 1.0) -> tuple[MultiCoil, torch.Tensor, torch.Tensor]:
    mask = make_mask(MaskSpec("random", 4, 0.08), (N, N), seed=0)
    sens = random_complex(batch, 6, N, N, seed=1)
    op = MultiCoil(mask, sens, scale=scale)
    y = op.forward(random_complex(batch, N, N, seed=2)) + 0.05 * mask * random_complex(batch, 6, N, N, seed=3)
    return op, y, random_complex(batch, N, N, seed=4)


def test_cg_data_residual_non_increasing_on_multicoil() -> None:
    op, y, x0 = _multicoil_problem()
    rhs = op.adjoint(y)
    fits = []
    for iters in range(11):
        x, _ = conjugate_gradient(op.normal, rhs, x0, max_iter=iters, tol=0.0)
        fits.append(float((op.forward(x) - y).norm()))
    for before, after in zip(fits[:-1], fits[1:], strict=True):
        assert after <= before * (1 + 1e-6)
    assert fits[-1] < 0.5 * fits[0]


def test_cg_stops_early_at_tolerance() -> None:
    # SingleCoil's normal operator is a projection: CG converges in one step.
    op = SingleCoil(make_mask(MaskSpec("random", 4), (N, N), seed=0))
    y = op.forward(random_complex(2, N, N, seed=5))
    rhs = op.adjoint(y)
    x, residuals = conjugate_gradient(op.normal, rhs, torch.zeros_like(rhs), max_iter=20, tol=1e-5)
    assert len(residuals) - 1 < 20
    assert residuals[-1] <= 1e-5 * float(rhs.norm()) * 2
    torch.testing.assert_close(op.forward(x), y, rtol=1e-4, atol=1e-4)


def test_cg_is_per_batch_element() -> None:
    op, y, x0 = _multicoil_problem(batch=2)
    rhs = op.adjoint(y)
    batched, _ = conjugate_gradient(op.normal, rhs, x0, max_iter=5, tol=1e-6)
    for b in range(2):
        single = MultiCoil(op.mask, op.sens[b : b + 1])
        alone, _ = conjugate_gradient(single.normal, rhs[b : b + 1], x0[b : b + 1], max_iter=5, tol=1e-6)
        torch.testing.assert_close(batched[b : b + 1], alone, rtol=1e-4, atol=1e-5)


def test_cg_does_not_mutate_inputs() -> None:
    op, y, x0 = _multicoil_problem()
    x0_before, y_before = x0.clone(), y.clone()
    cg_consistency(op, x0, y, lam=0.1, max_iter=3)
    assert torch.equal(x0, x0_before) and torch.equal(y, y_before)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_hard_on_multicoil_fits_data(scale: float) -> None:
    op, y, x0 = _multicoil_problem(scale=scale)
    x = Hard(iters=40, tol=1e-7)(op, x0, y, prior_var=1.0)
    # Least-squares fit: the normal-equation residual is small and the data misfit well below x0's.
    assert float((op.adjoint(op.forward(x) - y)).norm()) < 1e-3 * float(op.adjoint(y).norm())
    assert float((op.forward(x) - y).norm()) < 0.3 * float((op.forward(x0) - y).norm())


@pytest.mark.parametrize("mode", ["hard", "cg", "soft"])
def test_multicoil_consistency_zeroes_outside_the_coil_support(mode: str) -> None:
    mask = make_mask(MaskSpec("random", 4, 0.08), (N, N), seed=0)
    sens = random_complex(1, 6, N, N, seed=1)
    sens[..., :, :8] = 0  # no coil sees the first 8 columns (as outside ESPIRiT's or low-res maps' support)
    op = MultiCoil(mask, sens)
    truth = random_complex(1, N, N, seed=2)
    truth[..., :8] = 0
    y = op.forward(truth)
    x0 = random_complex(1, N, N, seed=4)
    x = make_consistency(mode, 40, 1e-7)(op, x0, y, prior_var=1.0, noise_var=torch.tensor([0.01]))
    assert float(x[..., :8].abs().max()) == 0.0
    assert float(x0[..., :8].abs().min()) > 0  # the input is untouched
    if mode == "hard":  # still fits the data
        assert float((op.forward(x) - y).norm()) < 1e-3 * float(y.norm())
    assert make_consistency("none")(op, x0, y, prior_var=1.0) is x0


def test_consistency_kinds_single_coil() -> None:
    op = SingleCoil(make_mask(MaskSpec("equispaced", 4), (N, N), seed=1), scale=2.0)
    y = op.forward(random_complex(2, N, N, seed=6))
    x0 = random_complex(2, N, N, seed=7)
    assert {m.value for m in CONSISTENCY} == {"hard", "cg", "soft", "none"}
    assert [type(make_consistency(m)) for m in ("hard", "cg", "soft", "none")] == [Hard, CG, Soft, NoConsistency]
    assert make_consistency(DCMode.CG, 7, 1e-3) == CG(7, 1e-3)
    assert [make_consistency(m).uses_noise for m in DCMode] == [False, False, True, False]
    hard = Hard()(op, x0, y, prior_var=1.0)
    torch.testing.assert_close(hard, op.project(x0, y))
    soft0 = Soft()(op, x0, y, prior_var=1.0, noise_var=torch.zeros(2))
    torch.testing.assert_close(soft0, hard, rtol=1e-6, atol=1e-6)
    cg = CG(10, 1e-7)(op, x0, y, prior_var=1.0)
    torch.testing.assert_close(cg, hard, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="choose one of"):
        make_consistency("exact")


@pytest.mark.parametrize("multicoil", [False, True])
def test_soft_uses_each_samples_own_noise_variance(multicoil: bool) -> None:
    """A batch with two noise levels gives each slice what it gets alone (no batch-averaged variance)."""
    if multicoil:
        op, y, x0 = _multicoil_problem()
        alone_ops = [MultiCoil(op.mask, op.sens[b : b + 1]) for b in range(2)]
    else:
        op = SingleCoil(make_mask(MaskSpec("random", 4), (N, N), seed=5))
        y, x0 = op.forward(random_complex(2, N, N, seed=3)), random_complex(2, N, N, seed=4)
        alone_ops = [op, op]
    variances = torch.tensor([0.01, 4.0])
    both = Soft(20, 1e-7)(op, x0, y, prior_var=0.5, noise_var=variances)
    for b in range(2):
        alone = soft_consistency(alone_ops[b], x0[b : b + 1], y[b : b + 1], float(variances[b]), 0.5, max_iter=20,
                                 tol=1e-7)
        torch.testing.assert_close(both[b : b + 1], alone, rtol=1e-4, atol=1e-5)
    averaged = Soft(20, 1e-7)(op, x0, y, prior_var=0.5, noise_var=variances.mean().expand(2))
    assert not torch.allclose(both, averaged, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_soft_closed_form_matches_formula_and_cg(scale: float) -> None:
    mask = make_mask(MaskSpec("random", 4), (N, N), seed=2)
    op = SingleCoil(mask, scale=scale)
    y = op.forward(random_complex(2, N, N, seed=8))
    x0 = random_complex(2, N, N, seed=9)
    noise_var, prior_var = 0.3, 0.8
    x = soft_consistency(op, x0, y, noise_var, prior_var)
    k, k0 = fft2c(x), fft2c(x0)
    measured = torch.broadcast_to(mask > 0, k.shape)
    expected = (prior_var * scale * y + noise_var * k0) / (prior_var * scale**2 + noise_var)
    torch.testing.assert_close(k[measured], expected[measured], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k[~measured], k0[~measured], rtol=1e-5, atol=1e-5)
    # Same MAP problem solved iteratively (the normal operator has two eigenvalues: CG needs two steps).
    x_cg = cg_consistency(op, x0, y, lam=noise_var / prior_var, max_iter=10, tol=1e-7)
    torch.testing.assert_close(x, x_cg, rtol=1e-4, atol=1e-4)


def test_soft_on_kspace_crop_and_multicoil() -> None:
    crop = KspaceCrop(2, (N, N), scale=1.5)
    y = crop.forward(random_complex(1, N, N, seed=10))
    x0 = random_complex(1, N, N, seed=11)
    torch.testing.assert_close(soft_consistency(crop, x0, y, 0.0, 1.0), crop.project(x0, y), rtol=1e-6, atol=1e-6)
    # A huge noise variance trusts the prior: the result stays at x0.
    torch.testing.assert_close(soft_consistency(crop, x0, y, 1e9, 1.0), x0, rtol=1e-5, atol=1e-5)
    op, ym, xm = _multicoil_problem()
    torch.testing.assert_close(soft_consistency(op, xm, ym, 0.0, 1.0), Hard(10)(op, xm, ym, prior_var=1.0),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(soft_consistency(op, xm, ym, 0.5, 2.0), cg_consistency(op, xm, ym, lam=0.25),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_coils", [0, 4])
def test_estimate_noise_std(num_coils: int) -> None:
    sigma = 0.02
    img, _ = make_phantom(128)
    mask = make_mask(MaskSpec("random", 4), (128, 128), seed=3)
    if num_coils:
        clean = fft2c(make_coil_maps(128, num_coils) * img)
        noise = random_complex(num_coils, 128, 128, seed=12)
    else:
        clean, noise = fft2c(img), random_complex(128, 128, seed=12)
    # torch.randn on complex draws each component with variance 1/2.
    kspace = (clean + sigma * (2**0.5) * noise) * mask
    estimate = estimate_noise_std(kspace, mask)
    assert abs(estimate - sigma) / sigma < 0.15


def test_estimate_noise_std_needs_edge_samples() -> None:
    mask = torch.zeros(64, 64)
    mask[24:40, 24:40] = 1
    with pytest.raises(ValueError):
        estimate_noise_std(random_complex(64, 64) * mask, mask)
    # A 2D mask with empty corners falls back to the border.
    poisson = make_mask(MaskSpec("poisson", 4, 0.2), (64, 64), seed=0)
    estimate = estimate_noise_std(0.1 * (2**0.5) * random_complex(64, 64, seed=13) * poisson, poisson)
    assert abs(estimate - 0.1) < 0.02

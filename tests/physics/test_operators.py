from __future__ import annotations

import pytest
import torch
from conftest import random_complex

from mridiff.physics import KspaceCrop, MaskSpec, MultiCoil, Operator, SingleCoil, fft2c, make_mask

B, H, W = 3, 64, 48


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).sum()


def adjointness_error(op: Operator, x: torch.Tensor) -> float:
    ax = op.forward(x)
    y = random_complex(*ax.shape, seed=99)
    lhs = _inner(ax, y)
    rhs = _inner(x, op.adjoint(y))
    return float((lhs - rhs).abs() / (ax.norm() * y.norm()))


def _masks() -> dict[str, torch.Tensor]:
    one_d = make_mask(MaskSpec("random", 4), (H, W), seed=0)
    two_d = make_mask(MaskSpec("gaussian2d", 4, 0.1), (H, W), seed=0)
    batched = torch.stack([make_mask(MaskSpec("equispaced_fraction", 4), (H, W), seed=s) for s in range(B)])
    return {"1d": one_d, "2d": two_d, "batched": batched}


MASKS = _masks()
SCALES: list[float | torch.Tensor] = [1.0, 2.5, torch.tensor([0.5, 3.0, 7.0])]


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
def test_single_coil_adjoint(mask_name: str, scale: float | torch.Tensor) -> None:
    op = SingleCoil(MASKS[mask_name], scale=scale)
    x = random_complex(B, H, W, seed=1)
    assert op.forward(x).shape == (B, H, W)
    assert adjointness_error(op, x) < 1e-5


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
@pytest.mark.parametrize("shared_sens", [False, True])
def test_multi_coil_adjoint(mask_name: str, scale: float | torch.Tensor, shared_sens: bool) -> None:
    sens = random_complex(4, H, W, seed=2) if shared_sens else random_complex(B, 4, H, W, seed=2)
    op = MultiCoil(MASKS[mask_name], sens, scale=scale)
    x = random_complex(B, H, W, seed=3)
    assert op.forward(x).shape == (B, 4, H, W)
    assert adjointness_error(op, x) < 1e-5


@pytest.mark.parametrize(("factor", "hr_shape"), [(2, (64, 48)), (4, (64, 48)), (3, (66, 50)), (4, (62, 45))])
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
def test_kspace_crop_adjoint(factor: int, hr_shape: tuple[int, int], scale: float | torch.Tensor) -> None:
    op = KspaceCrop(factor, hr_shape, scale=scale)
    x = random_complex(B, *hr_shape, seed=4)
    assert op.forward(x).shape == (B, hr_shape[0] // factor, hr_shape[1] // factor)
    assert adjointness_error(op, x) < 1e-5


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
def test_single_coil_projection(mask_name: str, scale: float | torch.Tensor) -> None:
    mask = MASKS[mask_name]
    op = SingleCoil(mask, scale=scale)
    y = op.forward(random_complex(B, H, W, seed=5))
    x = random_complex(B, H, W, seed=6)
    x_before, y_before, mask_before = x.clone(), y.clone(), op.mask.clone()
    xp = op.project(x, y)
    k, k0 = fft2c(xp), fft2c(x)
    measured = torch.broadcast_to(mask > 0, (B, H, W))
    s = scale.reshape(-1, 1, 1) if isinstance(scale, torch.Tensor) else scale
    torch.testing.assert_close((s * k)[measured], y[measured], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k[~measured], k0[~measured], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.forward(xp), y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.project(xp, y), xp, rtol=1e-5, atol=1e-5)  # idempotent
    assert torch.equal(x, x_before) and torch.equal(y, y_before) and torch.equal(op.mask, mask_before)


@pytest.mark.parametrize(("factor", "hr_shape"), [(2, (64, 48)), (3, (66, 50))])
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
def test_kspace_crop_projection(factor: int, hr_shape: tuple[int, int], scale: float | torch.Tensor) -> None:
    op = KspaceCrop(factor, hr_shape, scale=scale)
    y = op.forward(random_complex(B, *hr_shape, seed=7))
    x = random_complex(B, *hr_shape, seed=8)
    x_before = x.clone()
    xp = op.project(x, y)
    torch.testing.assert_close(op.forward(xp), y, rtol=1e-5, atol=1e-5)
    # Outside the centre block k-space is unchanged.
    h, w = op.lr_shape
    r0, c0 = hr_shape[0] // 2 - h // 2, hr_shape[1] // 2 - w // 2
    outside = torch.ones(hr_shape, dtype=torch.bool)
    outside[r0 : r0 + h, c0 : c0 + w] = False
    torch.testing.assert_close(fft2c(xp)[:, outside], fft2c(x)[:, outside], rtol=1e-5, atol=1e-5)
    assert torch.equal(x, x_before)


def test_multicoil_has_no_exact_projection() -> None:
    op = MultiCoil(MASKS["1d"], random_complex(B, 2, H, W))
    assert not op.has_exact_projection
    with pytest.raises(TypeError):
        op.project(random_complex(B, H, W), op.forward(random_complex(B, H, W)))


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("scale", SCALES, ids=["s1", "s2.5", "per-sample"])
@pytest.mark.parametrize("shared_sens", [False, True])
def test_normal_is_adjoint_of_forward(mask_name: str, scale: float | torch.Tensor, shared_sens: bool) -> None:
    sens = random_complex(3, H, W, seed=8) if shared_sens else random_complex(B, 3, H, W, seed=8)
    op = MultiCoil(MASKS[mask_name], sens, scale=scale)
    x = random_complex(B, H, W, seed=9)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=1e-5, atol=1e-5)
    # fastMRI's 1D masks take the cheaper column-only path; a 2D mask must not.
    assert op._normal_dims == ((-2, -1) if mask_name == "2d" else (-1,))


def test_multicoil_adjoint_memo_never_returns_a_stale_value() -> None:
    op = MultiCoil(MASKS["1d"], random_complex(B, 3, H, W, seed=12))
    y = op.forward(random_complex(B, H, W, seed=13))
    first = op.adjoint(y)
    expected = first.clone()
    assert op.adjoint(y) is first  # the loop's repeated A^H y is not recomputed
    first.mul_(2.0)  # a caller that writes into the result must not poison the next call
    torch.testing.assert_close(op.adjoint(y), expected)
    y.mul_(3.0)  # nor may in-place changes of y
    torch.testing.assert_close(op.adjoint(y), 3.0 * expected)
    torch.testing.assert_close(op.adjoint(y.clone()), 3.0 * expected)


@pytest.mark.parametrize(("height", "width"), [(33, 27), (32, 27), (33, 26)])
@pytest.mark.parametrize("one_d", [True, False])
@pytest.mark.parametrize("block", [1 << 17, 500])  # 500 elements: blocks of 1-3 rows and a ragged last one
def test_normal_with_odd_sizes(height: int, width: int, one_d: bool, block: int,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mridiff.physics.sense.NORMAL_BLOCK", block)
    gen = torch.Generator().manual_seed(3)
    mask = (torch.rand(1 if one_d else height, width, generator=gen) < 0.4).float().expand(height, width)
    mask = mask * torch.rand(height, width, generator=gen) if not one_d else mask  # a weighted 2D mask too
    op = MultiCoil(mask.contiguous(), random_complex(2, 4, height, width, seed=10), scale=torch.tensor([0.7, 2.0]))
    x = random_complex(2, height, width, seed=11)
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_kspace_crop_lowres_keeps_intensity_and_upsample(scale: float) -> None:
    op = KspaceCrop(4, (64, 48), scale=scale)
    const = torch.full((1, 64, 48), 0.7 + 0.2j, dtype=torch.complex64)
    y = op.forward(const)
    torch.testing.assert_close(op.lowres_image(y), torch.full((1, 16, 12), 0.7 + 0.2j, dtype=torch.complex64))
    torch.testing.assert_close(op.upsample(y), const, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.upsample(y), op.adjoint(y) / scale**2, rtol=1e-5, atol=1e-5)


def test_kspace_crop_rejects_wrong_size() -> None:
    op = KspaceCrop(2, (64, 48))
    with pytest.raises(ValueError):
        op.forward(random_complex(1, 64, 64))


@pytest.mark.parametrize("bad", [0.0, -1.0, torch.tensor([1.0, -2.0])])
def test_scale_must_be_positive(bad: float | torch.Tensor) -> None:
    with pytest.raises(ValueError):
        SingleCoil(MASKS["1d"], scale=bad)


def _every_operator() -> list[tuple[object, torch.Tensor]]:
    from mridiff.physics import AreaDownsample

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 16, dtype=torch.complex64, generator=gen)
    masks = (torch.rand(2, 16, 16, generator=gen) < 0.5).float()
    sens = torch.randn(2, 3, 16, 16, dtype=torch.complex64, generator=gen)
    scale = torch.tensor([1.5, 3.0])
    ops = [SingleCoil(masks, scale), SingleCoil(masks[0]), MultiCoil(masks, sens, scale), MultiCoil(masks[0], sens[0]),
           KspaceCrop(2, (16, 16), scale), AreaDownsample(2, (16, 16))]
    return [(op, x) for op in ops]


@pytest.mark.parametrize("index", range(6))
def test_repeat_interleave_gives_the_operator_of_the_repeated_batch(index: int) -> None:
    op, x = _every_operator()[index]
    rep = op.repeat_interleave(3)  # type: ignore[attr-defined]
    expected = op.forward(x).repeat_interleave(3, 0)  # type: ignore[attr-defined]
    torch.testing.assert_close(rep.forward(x.repeat_interleave(3, 0)), expected)
    y = expected
    torch.testing.assert_close(rep.adjoint(y), op.adjoint(y[::3]).repeat_interleave(3, 0))  # type: ignore[attr-defined]
    moved = rep.to("cpu")
    torch.testing.assert_close(moved.forward(x.repeat_interleave(3, 0)), expected)

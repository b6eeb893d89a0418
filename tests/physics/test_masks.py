from __future__ import annotations

import pytest
import torch
from fastmri.data import subsample

from mridiff.physics import (
    DEFAULT_CENTER_FRACTIONS,
    MASK_KINDS,
    MaskSpec,
    acs_box,
    default_center_fraction,
    make_mask,
)

FASTMRI_CLASSES = {
    "random": subsample.RandomMaskFunc,
    "equispaced": subsample.EquiSpacedMaskFunc,
    "equispaced_fraction": subsample.EquispacedMaskFractionFunc,
    "magic": subsample.MagicMaskFunc,
    "magic_fraction": subsample.MagicMaskFractionFunc,
}


def test_default_center_fractions() -> None:
    assert DEFAULT_CENTER_FRACTIONS == {4: 0.08, 8: 0.04}
    assert default_center_fraction(4) == 0.08
    assert default_center_fraction(8) == 0.04
    assert MaskSpec("random", 8).fraction == 0.04
    assert MaskSpec("random", 4, 0.1).fraction == 0.1
    assert set(MASK_KINDS) == set(FASTMRI_CLASSES) | {"poisson", "gaussian2d"}


@pytest.mark.parametrize("kind", sorted(FASTMRI_CLASSES))
@pytest.mark.parametrize("acc", [4, 8])
@pytest.mark.parametrize("seed", [0, 123])
def test_1d_masks_equal_fastmri(kind: str, acc: int, seed: int) -> None:
    height, width = 96, 368
    mask = make_mask(MaskSpec(kind, acc), (height, width), seed)
    func = FASTMRI_CLASSES[kind]([default_center_fraction(acc)], [acc])
    ref, num_low = func((1, height, width, 1), seed=seed)
    assert mask.dtype == torch.float32 and mask.shape == (height, width)
    assert torch.equal(mask, ref.reshape(1, width).expand(height, width))
    rows, cols = acs_box(mask)
    assert rows == height and cols >= num_low


def test_1d_mask_seed_reproducible() -> None:
    spec = MaskSpec("random", 4)
    a = make_mask(spec, (64, 128), 5)
    assert torch.equal(a, make_mask(spec, (64, 128), 5))
    assert not torch.equal(a, make_mask(spec, (64, 128), 6))


@pytest.mark.parametrize("kind", ["poisson", "gaussian2d"])
@pytest.mark.parametrize("acc", [4, 8])
def test_2d_masks_hit_acceleration_with_full_centre(kind: str, acc: int) -> None:
    shape = (128, 128)
    spec = MaskSpec(kind, acc, center_fraction=24 / 128)
    mask = make_mask(spec, shape, seed=3)
    assert mask.dtype == torch.float32 and mask.shape == shape
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    achieved = mask.numel() / mask.sum().item()
    assert abs(achieved - acc) / acc < 0.1
    assert mask[64 - 12 : 64 + 12, 64 - 12 : 64 + 12].all()
    rows, cols = acs_box(mask)
    assert rows >= 24 and cols >= 24
    assert torch.equal(mask, make_mask(spec, shape, seed=3))
    assert not torch.equal(mask, make_mask(spec, shape, seed=4))


def test_gaussian2d_is_variable_density() -> None:
    mask = make_mask(MaskSpec("gaussian2d", 8, 0.05), (128, 128), seed=0)
    yy, xx = torch.meshgrid(torch.arange(128) - 64, torch.arange(128) - 64, indexing="ij")
    r = torch.sqrt(yy.float() ** 2 + xx.float() ** 2)
    inner = mask[(r > 10) & (r < 30)].mean()
    outer = mask[r > 50].mean()
    assert inner > 2 * outer > 0


@pytest.mark.parametrize("kind", ["equispaced_fraction", "random", "gaussian2d"])
def test_centre_larger_than_budget_is_rejected(kind: str) -> None:
    fraction = 0.25 if kind != "gaussian2d" else 0.6
    with pytest.raises(ValueError, match="centre fraction"):
        make_mask(MaskSpec(kind, 4, fraction), (64, 64), seed=0)


def test_acceleration_one_is_fully_sampled() -> None:
    assert make_mask(MaskSpec("poisson", 1), (32, 32), 0).all()


@pytest.mark.parametrize("bad", [dict(kind="radial", acceleration=4), dict(kind="random", acceleration=0),
                                 dict(kind="random", acceleration=4, center_fraction=1.5)])
def test_mask_spec_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MaskSpec(**bad)  # type: ignore[arg-type]


def test_acs_box_handcrafted() -> None:
    mask = torch.zeros(16, 20)
    mask[:, 7:13] = 1  # 6 centre columns around W//2 = 10
    mask[:, 0] = 1
    assert acs_box(mask) == (16, 6)
    box = torch.zeros(16, 20)
    box[5:11, 8:13] = 1
    assert acs_box(box) == (6, 5)  # rows 8-3 .. 8+2, cols 10-2 .. 10+2
    assert acs_box(torch.zeros(8, 8)) == (0, 0)

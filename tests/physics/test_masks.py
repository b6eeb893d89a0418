from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri.data import subsample

from mridiff.errors import InputError
from mridiff.physics import (
    DEFAULT_CENTER_FRACTIONS,
    MASK_KINDS,
    MaskSpec,
    acs_box,
    acs_width,
    default_center_fraction,
    make_mask,
    mask_from_array,
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
    assert acs_width(mask) >= num_low
    rows, cols = acs_box(mask)
    # acs_box is centred on W//2 (a calibration crop), acs_width counts the whole run, which extra lines can extend.
    assert rows == height and num_low <= cols <= acs_width(mask)


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
    assert acs_width(mask) == 0  # no column is fully sampled in a 2D mask
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
    with pytest.raises(InputError, match="centre fraction"):
        make_mask(MaskSpec(kind, 4, fraction), (64, 64), seed=0)


def test_acceleration_one_is_fully_sampled() -> None:
    assert make_mask(MaskSpec("poisson", 1), (32, 32), 0).all()


@pytest.mark.parametrize("bad", [dict(kind="radial", acceleration=4), dict(kind="random", acceleration=0),
                                 dict(kind="random", acceleration=4, center_fraction=1.5)])
def test_mask_spec_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(InputError):
        MaskSpec(**bad)  # type: ignore[arg-type]


def test_mask_from_array_accepts_fastmri_shapes() -> None:
    height, width = 40, 32
    cols = (np.random.default_rng(0).random(width) < 0.3).astype(np.float32)
    cols[14:18] = 1
    expected = torch.from_numpy(np.broadcast_to(cols, (height, width)).copy())
    for arr in (cols, cols.astype(bool), cols.reshape(1, 1, width, 1), cols.reshape(1, width),
                cols.reshape(1, width, 1), np.broadcast_to(cols, (height, width))):
        out = mask_from_array(arr, (height, width), "scan.h5")
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    full2d = (np.random.default_rng(1).random((height, width)) < 0.5).astype(np.float32)
    assert torch.equal(mask_from_array(full2d, (height, width), None), torch.from_numpy(full2d))


@pytest.mark.parametrize("arr", [np.ones(31), np.ones((40, 31)), np.ones((39, 32)), np.ones((2, 1, 32, 1)),
                                 np.full(32, 0.5), np.zeros(32)])
def test_mask_from_array_rejects_bad_masks(arr: np.ndarray) -> None:
    with pytest.raises(InputError) as err:
        mask_from_array(arr, (40, 32), "scan.h5")
    assert err.value.path == "scan.h5"


def test_acs_width_and_box_handcrafted() -> None:
    mask = torch.zeros(16, 20)
    mask[:, 7:13] = 1  # 6 centre columns around W//2 = 10
    mask[:, 0] = 1
    assert acs_width(mask) == 6
    assert acs_box(mask) == (16, 6)
    box = torch.zeros(16, 20)
    box[5:11, 8:13] = 1
    assert acs_box(box) == (6, 5)  # rows 8-3 .. 8+2, cols 10-2 .. 10+2
    assert acs_width(box) == 0
    assert acs_box(torch.zeros(8, 8)) == (0, 0)

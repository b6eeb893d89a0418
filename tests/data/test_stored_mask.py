"""The one parser for user-handed masks (a file's ``mask`` dataset, an API argument)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mridiff.data.stored_mask import parse_mask
from mridiff.errors import InputError


def test_parse_mask_accepts_fastmri_shapes() -> None:
    height, width = 40, 32
    cols = (np.random.default_rng(0).random(width) < 0.3).astype(np.float32)
    cols[14:18] = 1
    expected = torch.from_numpy(np.broadcast_to(cols, (height, width)).copy())
    for arr in (cols, cols.astype(bool), cols.reshape(1, 1, width, 1), cols.reshape(1, width),
                cols.reshape(1, width, 1), np.broadcast_to(cols, (height, width))):
        out = torch.from_numpy(parse_mask(arr, (height, width), "scan.h5"))
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    full2d = (np.random.default_rng(1).random((height, width)) < 0.5).astype(np.float32)
    assert torch.equal(torch.from_numpy(parse_mask(full2d, (height, width))), torch.from_numpy(full2d))


@pytest.mark.parametrize("arr", [np.ones(31), np.ones((40, 31)), np.ones((39, 32)), np.ones((2, 1, 32, 1)),
                                 np.full(32, 0.5), np.zeros(32)])
def test_parse_mask_rejects_bad_masks(arr: np.ndarray) -> None:
    with pytest.raises(InputError) as err:
        parse_mask(arr, (40, 32), "scan.h5")
    assert err.value.path == "scan.h5"


def test_parse_mask_rejects_nan_and_text() -> None:
    with pytest.raises(InputError, match="NaN"):
        parse_mask(np.array([1.0, np.nan, 0.0, 1.0]), (2, 4))
    with pytest.raises(InputError, match="dtype"):
        parse_mask(np.array(["1", "0"]), (2, 2))

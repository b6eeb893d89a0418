from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.errors import InputError
from mridiff.inference.reconstruct import Reconstructor
from mridiff.physics.masks import MaskSpec, make_mask


def _volume(path: Path) -> tuple[np.ndarray, bool]:
    info = open_scan(path)
    return np.stack([read_slice(info, i).kspace for i in range(2)]), info.multicoil


@pytest.fixture(scope="module")
def rec(tiny_recon_model: Path) -> Reconstructor:
    return Reconstructor(tiny_recon_model, device="cpu")


def test_k_samples_give_nonzero_std_of_right_shape(rec: Reconstructor, tiny_dataset: dict[str, Path]) -> None:
    kspace, multi = _volume(next(tiny_dataset["singlecoil"].glob("*.h5")))
    mask = make_mask(MaskSpec("random", 4), kspace.shape[-2:], 0)
    out = rec.reconstruct(kspace, mask, multicoil=multi, steps=3, samples=4, seed=0)
    assert out.mean.shape == out.std.shape == out.zero_filled.shape == (2, 32, 32)
    assert float(out.std.max()) > 0 and np.isfinite(out.std).all()
    assert out.nfe == 3


def test_same_seed_identical_different_seed_differs(rec: Reconstructor, tiny_dataset: dict[str, Path]) -> None:
    kspace, multi = _volume(next(tiny_dataset["singlecoil"].glob("*.h5")))
    mask = make_mask(MaskSpec("equispaced_fraction", 4), kspace.shape[-2:], 0)
    a = rec.reconstruct(kspace, mask, multicoil=multi, steps=2, seed=5)
    b = rec.reconstruct(kspace, mask, multicoil=multi, steps=2, seed=5)
    c = rec.reconstruct(kspace, mask, multicoil=multi, steps=2, seed=6)
    assert np.array_equal(a.mean, b.mean)
    assert not np.array_equal(a.mean, c.mean)




@pytest.mark.parametrize("dc", ["hard", "cg", "soft"])
def test_multicoil_modes_run(rec: Reconstructor, tiny_dataset: dict[str, Path], dc: str) -> None:
    kspace, multi = _volume(next(tiny_dataset["multicoil"].glob("*.h5")))
    assert multi
    mask = make_mask(MaskSpec("random", 4, 0.2), kspace.shape[-2:], 0)
    out = rec.reconstruct(kspace, mask, multicoil=True, steps=2, dc=dc, sens_method="lowres")
    assert out.mean.shape == (2, 32, 32) and np.isfinite(out.mean).all()


def test_hard_dc_output_keeps_measured_kspace_singlecoil(rec: Reconstructor) -> None:
    # A real-valued, non-negative image: then |x| = x and the magnitude output keeps the measurement exactly.
    torch.manual_seed(0)
    x = torch.rand(1, 32, 32) + 1.0
    k = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x.to(torch.complex64)), norm="ortho"))
    mask = torch.ones(32, 32)  # fully sampled: hard DC must return the image itself
    out = rec.reconstruct(k.numpy(), mask, multicoil=False, steps=2)
    assert np.allclose(out.mean[0], x[0].numpy(), rtol=1e-4, atol=1e-4)


def test_wrong_task_model_refused(tmp_path: Path) -> None:
    from mridiff.models.unet import ConditionalUNet
    from mridiff.training.checkpoint import export_model
    from tests.helpers import TINY, tiny_meta

    path = export_model(ConditionalUNet(TINY), tiny_meta("sr"), tmp_path / "sr.safetensors")
    with pytest.raises(InputError, match="task 'sr'"):
        Reconstructor(path)


# ----------------------------------------------------------------- every mask layout fastMRI's own code produces


def _fastmri_masks(kspace: np.ndarray) -> dict[str, np.ndarray | torch.Tensor]:
    """Masks from fastMRI's RandomMaskFunc, in the shapes its API hands out, for (S, H, W) k-space."""
    from fastmri.data.subsample import RandomMaskFunc
    from fastmri.data.transforms import apply_mask, to_tensor

    func = RandomMaskFunc(center_fractions=[0.25], accelerations=[4], seed=3)
    h, w = kspace.shape[-2:]
    raw, _ = func((1, h, w, 2), seed=3)  # (1, 1, W, 1) for a (C, H, W, 2) k-space
    _, applied, _ = apply_mask(to_tensor(kspace[0][None]), func, seed=3)  # (1, 1, W, 1), as the transforms give it
    cols = raw[0].squeeze()  # (W,)
    read_only = np.broadcast_to(cols.numpy(), (h, w))  # a non-writable numpy view
    return {
        "maskfunc_tensor": raw,
        "maskfunc_squeezed_W": cols,
        "maskfunc_numpy_W": cols.numpy().astype(bool),
        "apply_mask_1_1_W_1": applied,
        "apply_mask_numpy": applied.numpy(),
        "mask_1_W_1": raw[0],
        "read_only_HW": read_only,
        "per_slice_SHW": np.stack([read_only] * kspace.shape[0]),
    }


def test_every_fastmri_mask_shape_is_accepted_and_means_the_same(rec: Reconstructor,
                                                                  tiny_dataset: dict[str, Path]) -> None:
    kspace, multi = _volume(next(tiny_dataset["singlecoil"].glob("*.h5")))
    masks = _fastmri_masks(kspace)
    expected = np.broadcast_to(masks["maskfunc_squeezed_W"].numpy(), kspace.shape[-2:])
    reference = rec.reconstruct(kspace, torch.from_numpy(expected.copy()), multicoil=multi, steps=1, seed=1)
    for name, mask in masks.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "The given NumPy array is not writable" (or any other) warning
            out = rec.reconstruct(kspace, mask, multicoil=multi, steps=1, seed=1)
        assert np.array_equal(out.mean, reference.mean), name
        assert np.array_equal(out.zero_filled, reference.zero_filled), name


def test_read_only_kspace_gives_no_warning(rec: Reconstructor, tiny_dataset: dict[str, Path]) -> None:
    kspace, multi = _volume(next(tiny_dataset["singlecoil"].glob("*.h5")))
    kspace.setflags(write=False)
    mask = make_mask(MaskSpec("random", 4), kspace.shape[-2:], 0).numpy()
    mask.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.reconstruct(kspace, mask, multicoil=multi, steps=1)


@pytest.mark.parametrize(("mask", "problem"), [(np.ones(31), "does not fit"), (np.full((32, 32), 0.5), "0 or 1"),
                                               (np.zeros(32), "samples no")])
def test_wrong_masks_are_refused_in_one_line(rec: Reconstructor, tiny_dataset: dict[str, Path], mask: np.ndarray,
                                            problem: str) -> None:
    kspace, multi = _volume(next(tiny_dataset["singlecoil"].glob("*.h5")))
    with pytest.raises(InputError, match=problem):
        rec.reconstruct(kspace, mask, multicoil=multi, steps=1)

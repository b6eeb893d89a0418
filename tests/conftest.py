"""Shared fixtures: small fake fastMRI-layout HDF5 files and NIfTI volumes written to a temporary directory.

The HDF5 files follow the layout of fastMRI's own test fixtures (``tests/create_temp_data.py`` in
facebookresearch/fastMRI): single-coil ``kspace`` (S, H, W) complex64 + ``reconstruction_esc``, multi-coil
(S, C, H, W) + ``reconstruction_rss``, an ``ismrmrd_header`` and attributes ``max``/``norm``/``acquisition``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # data_prep/ is not an installed package
    sys.path.insert(0, str(ROOT))

# A header in the shape of real fastMRI files (ISMRMRD namespace, oversampled readout, 2x recon crop).
FASTMRI_HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <experimentalConditions><H1resonanceFrequency_Hz>127744000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{enc_h}</x><y>{enc_w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>440</x><y>220</y><z>5</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{rec_h}</x><y>{rec_w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>220</x><y>220</y><z>5</z></fieldOfView_mm>
    </reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{lim_max}</maximum><center>{lim_center}</center>
      </kspace_encoding_step_1>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>
"""


def fastmri_header(enc: tuple[int, int], rec: tuple[int, int]) -> bytes:
    """Header XML for encoded size ``enc`` and recon size ``rec``, limits as fastMRI's fixtures use."""
    return FASTMRI_HEADER.format(
        enc_h=enc[0], enc_w=enc[1], rec_h=rec[0], rec_w=rec[1], lim_center=enc[1] // 2 + 1, lim_max=enc[1] - 2
    ).encode()


def write_fastmri_h5(
    path: Path,
    kspace: np.ndarray | None,
    target: np.ndarray | None = None,
    target_key: str | None = None,
    header: bytes | None | str = "auto",
    attrs: dict[str, Any] | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    """Write one fastMRI-layout file; ``header="auto"`` builds one from the shapes, ``None`` omits it."""
    with h5py.File(path, "w") as hf:
        if kspace is not None:
            hf.create_dataset("kspace", data=kspace)
        if target is not None:
            key = target_key or (
                "reconstruction_rss" if kspace is not None and kspace.ndim == 4 else "reconstruction_esc"
            )
            hf.create_dataset(key, data=target)
        if mask is not None:
            hf.create_dataset("mask", data=mask)
        if header == "auto" and kspace is not None and kspace.ndim >= 2:
            enc = (int(kspace.shape[-2]), int(kspace.shape[-1]))
            rec = (int(target.shape[-2]), int(target.shape[-1])) if target is not None else enc
            header = fastmri_header(enc, rec)
        if isinstance(header, bytes):
            hf.create_dataset("ismrmrd_header", data=np.bytes_(header))
        for key, value in (attrs or {}).items():
            hf.attrs[key] = value
    return path


@pytest.fixture
def fastmri_h5_factory(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make(name, kspace, target=None, ...)`` writing a file into a fresh temporary directory."""

    def make(name: str, kspace: np.ndarray | None, **kwargs: Any) -> Path:
        return write_fastmri_h5(tmp_path / name, kspace, **kwargs)

    return make


def _random_complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


@pytest.fixture(scope="session")
def fastmri_mock_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fastMRI-style directories ``singlecoil_train``, ``multicoil_train`` and ``singlecoil_test`` (masked).

    Returns:
        ``{"singlecoil": dir, "multicoil": dir, "singlecoil_test": dir}``.
    """
    root = tmp_path_factory.mktemp("fastmri_data")
    rng = np.random.default_rng(1234)
    dirs = {"singlecoil": root / "singlecoil_train", "multicoil": root / "multicoil_train"}
    dirs["singlecoil_test"] = root / "singlecoil_test"
    for d in dirs.values():
        d.mkdir()
    sizes = [((32, 24), (16, 16)), ((40, 20), (20, 20))]
    for i, (enc, rec) in enumerate(sizes):
        num_slices = 3 + i
        for layout, ks_shape in (("singlecoil", (num_slices, *enc)), ("multicoil", (num_slices, 4, *enc))):
            target = np.abs(rng.normal(size=(num_slices, *rec))).astype(np.float32)
            attrs = {"max": target.max(), "norm": np.linalg.norm(target), "acquisition": "AXT1"}
            write_fastmri_h5(dirs[layout] / f"file{i}.h5", _random_complex(rng, ks_shape), target=target, attrs=attrs)
        mask = rng.integers(0, 2, size=enc[1]).astype(bool)
        mask[enc[1] // 2] = True
        write_fastmri_h5(
            dirs["singlecoil_test"] / f"file{i}.h5",
            _random_complex(rng, (num_slices, *enc)),
            mask=mask,
            attrs={"acquisition": "CORPD_FBK", "acceleration": 4, "num_low_frequency": 2},
        )
    return dirs


NIFTI_AFFINE = np.array(
    [
        [0.0, -1.2, 0.1, 30.0],
        [1.1, 0.0, 0.0, -40.0],
        [0.0, 0.05, 2.5, 12.5],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def blob_volume(shape: tuple[int, int, int] = (64, 64, 8)) -> np.ndarray:
    """A float32 ellipsoid 'head' with some structure, zero background."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    r2 = (x / 0.8) ** 2 + (y / 0.7) ** 2 + (z / 1.6) ** 2
    vol = np.where(r2 < 1.0, 100.0 + 40.0 * np.cos(6 * x) * np.sin(4 * y), 0.0)
    return vol.astype(np.float32)


@pytest.fixture
def data_helpers() -> SimpleNamespace:
    """Helper functions for data tests (importing conftest directly is ambiguous with several conftest files).

    Attributes: ``write_h5(path, kspace, ...)``, ``header(enc, rec)``, ``blob_volume(shape)``, ``affine``.
    """
    return SimpleNamespace(
        write_h5=write_fastmri_h5, header=fastmri_header, blob_volume=blob_volume, affine=NIFTI_AFFINE
    )


@pytest.fixture
def nifti_file(tmp_path: Path) -> Path:
    """A 64x64x8 float32 .nii.gz with a rotated, anisotropic, translated affine and a 'patient' descrip."""
    import nibabel as nib

    img = nib.Nifti1Image(blob_volume(), NIFTI_AFFINE)
    img.header["descrip"] = b"patient John Doe 1970-01-01"
    img.header["aux_file"] = b"MRN12345"
    path = tmp_path / "head_t1.nii.gz"
    nib.save(img, path)
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two single-coil volumes and one 4-coil volume, 32x32, written by data_prep (simulated k-space)."""
    import nibabel as nib

    from data_prep.nifti_to_fastmri import main as nifti_to_fastmri
    from tests.helpers import head_volume

    root = tmp_path_factory.mktemp("tinydata")
    for i, name in enumerate(["vol_a", "vol_b"]):
        path = root / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(head_volume((40, 40, 6), i), np.eye(4)), path)
        assert nifti_to_fastmri([str(path), str(root / "sc"), "--coils", "1", "--size", "32"]) == 0
    assert nifti_to_fastmri([str(root / "vol_a.nii.gz"), str(root / "mc"), "--coils", "4", "--size", "32"]) == 0
    return {"singlecoil": root / "sc", "multicoil": root / "mc", "root": root}


@pytest.fixture(scope="session")
def tiny_recon_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported recon model with random (seeded) weights: enough to test plumbing, not quality."""
    import torch

    from mridiff.models.unet import ConditionalUNet
    from mridiff.training.checkpoint import export_model
    from tests.helpers import TINY, tiny_meta

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return export_model(ConditionalUNet(TINY), tiny_meta(), path)


@pytest.fixture(scope="session")
def tiny_augment_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny unconditional magnitude U-Net at 32x32, exported like a trained one (plumbing only)."""
    import torch

    from mridiff.models.unet import ConditionalUNet, UNetConfig
    from mridiff.training.checkpoint import export_model
    from tests.helpers import tiny_meta

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4,
                     cond_channels=0, state_channels=1)
    path = tmp_path_factory.mktemp("aug") / "a.safetensors"
    return export_model(ConditionalUNet(cfg), tiny_meta("augment", cfg), path)


@pytest.fixture(scope="session")
def sr_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained tiny SR U-Net exported like a trained one (plumbing only)."""
    import torch

    from mridiff.models.unet import ConditionalUNet, UNetConfig
    from mridiff.training.checkpoint import export_model

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4)
    meta = {"task": "sr", "model": cfg.to_dict(),
            "diffusion": {"timesteps": 1000, "schedule": "linear", "prediction": "epsilon"},
            "normalisation": {"method": "percentile", "q": 99.0}, "masks": {"sr_scales": [2, 4]},
            "training": {"image_size": [32, 32]}}
    return str(export_model(ConditionalUNet(cfg), meta, tmp_path_factory.mktemp("m") / "sr.safetensors"))

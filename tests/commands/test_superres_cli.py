"""``mridiff superres``: NIfTI and fastMRI input, output geometry, uncertainty map and user errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from mridiff.cli import main


def lowres_nifti(helpers: SimpleNamespace, path: Path, shape: tuple[int, int, int]) -> Path:
    nib.save(nib.Nifti1Image(helpers.blob_volume(shape), helpers.affine), path)
    return path


def world(affine: np.ndarray, index: list[float]) -> np.ndarray:
    return affine @ np.array([*index, 1.0])


@pytest.mark.parametrize(("shape", "axis"), [((16, 16, 3), 2), ((15, 3, 16), 1)])
def test_nifti_output_shape_affine_and_std(tmp_path: Path, sr_model: str, capsys: pytest.CaptureFixture[str],
                                           data_helpers: SimpleNamespace, shape: tuple[int, int, int],
                                           axis: int) -> None:
    src = lowres_nifti(data_helpers, tmp_path / "lr.nii.gz", shape)
    lr_affine = data_helpers.affine
    out = tmp_path / "out" / "sr.nii.gz"
    rc = main(["superres", str(src), "--scale", "2", "--axis", str(axis), "--ckpt", sr_model, "--steps", "2",
               "--samples", "2", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    img, std = nib.load(out), nib.load(tmp_path / "out" / "sr_std.nii.gz")
    want = tuple(n if a == axis else 2 * n for a, n in enumerate(shape))
    assert img.shape == std.shape == want
    assert np.allclose(img.affine, std.affine)
    assert float(np.asarray(std.dataobj).max()) > 0
    zooms = np.asarray(img.header.get_zooms()) / np.linalg.norm(lr_affine[:3, :3], axis=0)
    assert np.allclose(zooms, [1.0 if a == axis else 0.5 for a in range(3)], atol=1e-5)
    # world coordinates of matching voxels agree: LR voxel i <-> HR voxel 2 i + offset (offset 1 for odd n)
    rng = np.random.default_rng(0)
    for lr_idx in rng.integers(0, 3, size=(6, 3)):
        hr_idx = [float(i) if a == axis else 2.0 * i + (shape[a] % 2) for a, i in enumerate(lr_idx)]
        assert np.allclose(world(img.affine, hr_idx), world(lr_affine, list(lr_idx)), atol=1e-4)
    assert "wrote" in capsys.readouterr().out


def test_from_highres_keeps_the_input_grid_and_reports_baselines(tmp_path: Path, sr_model: str,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 data_helpers: SimpleNamespace) -> None:
    src = lowres_nifti(data_helpers, tmp_path / "hr.nii.gz", (32, 32, 2))
    out = tmp_path / "sr.nii.gz"
    rc = main(["superres", str(src), "--scale", "2", "--from-highres", "--ckpt", sr_model, "--steps", "2",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    img = nib.load(out)
    assert img.shape == (32, 32, 2)
    assert np.allclose(img.affine, data_helpers.affine, atol=1e-6)
    text = capsys.readouterr().out
    assert all(name in text for name in ("mridiff", "sinc", "bicubic")) and "PSNR" in text


def test_fastmri_h5_input(tmp_path: Path, sr_model: str, data_helpers: SimpleNamespace) -> None:
    rng = np.random.default_rng(0)
    kspace = (rng.normal(size=(2, 12, 16)) + 1j * rng.normal(size=(2, 12, 16))).astype(np.complex64)
    src = data_helpers.write_h5(tmp_path / "scan.h5", kspace)
    out = tmp_path / "scan_sr.nii.gz"
    assert main(["superres", str(src), "--scale", "2", "--ckpt", sr_model, "--steps", "2", "--out", str(out),
                 "--no-progress"]) == 0
    img = nib.load(out)
    assert img.shape == (32, 24, 2)  # fastMRI (S, h, w) is stored as (w, h, S)
    # header FOV 220 mm over w = 16 columns (x) and 220 / 12 rows (y), halved by x2
    assert np.allclose(img.header.get_zooms()[:2], (220 / 16 / 2, 220 / 12 / 2), atol=1e-4)


def _assert_user_error(capsys: pytest.CaptureFixture[str], rc: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("mridiff: error:") and needle in err, err


def test_bad_inputs_fail_in_one_line_without_outputs(tmp_path: Path, sr_model: str, capsys: pytest.CaptureFixture[str],
                                                     data_helpers: SimpleNamespace) -> None:
    out = tmp_path / "out" / "sr.nii.gz"
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(data_helpers.blob_volume((16, 16, 3))[..., 0], data_helpers.affine), flat)
    base = ["--ckpt", sr_model, "--steps", "2", "--samples", "2", "--out", str(out), "--no-progress"]
    _assert_user_error(capsys, main(["superres", str(flat), "--scale", "2", *base]), "2 dimensions")
    lr = lowres_nifti(data_helpers, tmp_path / "lr.nii.gz", (18, 18, 2))
    _assert_user_error(capsys, main(["superres", str(lr), "--scale", "3", *base]), "invalid choice")
    _assert_user_error(capsys, main(["superres", str(lr), "--slices", "5:", *base]), "selects no slice")
    _assert_user_error(capsys, main(["superres", str(lr), "--slices", "3:1", *base]), "larger than START")
    _assert_user_error(capsys, main(["superres", str(lr), "--reference", str(lr), *base]), "do not match")
    masked = data_helpers.write_h5(tmp_path / "masked.h5", np.ones((1, 8, 8), np.complex64), mask=np.ones(8, bool))
    _assert_user_error(capsys, main(["superres", str(masked), *base]), "undersampled")
    assert not any(p.is_file() for p in tmp_path.rglob("sr*.nii.gz"))
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"keep me")
    _assert_user_error(capsys, main(["superres", str(lr), *base]), "already exists")
    assert out.read_bytes() == b"keep me" and not (out.parent / "sr_std.nii.gz").exists()

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from mridiff.data.nifti import read_nifti, slice_volume, stack_slices, write_nifti
from mridiff.errors import InputError


def test_read_fixture(nifti_file, data_helpers):
    vol = read_nifti(nifti_file)
    assert vol.data.shape == (64, 64, 8) and vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.affine, data_helpers.affine, atol=1e-5)
    np.testing.assert_allclose(vol.data, data_helpers.blob_volume(), rtol=1e-6)
    np.testing.assert_allclose(vol.zooms, nib.load(nifti_file).header.get_zooms(), rtol=1e-4)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_round_trip_keeps_geometry_and_drops_free_text(nifti_file, tmp_path, suffix):
    vol = read_nifti(nifti_file)
    out = write_nifti(tmp_path / f"out{suffix}", vol.data * 2, vol.affine, header=vol.header)
    back = read_nifti(out)
    assert back.data.shape == vol.data.shape
    np.testing.assert_allclose(back.data, vol.data * 2, rtol=1e-6)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    np.testing.assert_allclose(back.zooms, vol.zooms, rtol=1e-5)
    img = nib.load(out)
    np.testing.assert_allclose(img.header.get_zooms(), nib.load(nifti_file).header.get_zooms(), rtol=1e-5)
    np.testing.assert_allclose(img.get_sform(), vol.affine, atol=1e-5)
    # (the fixture affine has a shear, which only the sform can hold; the qform is nibabel's closest fit)
    assert img.header["descrip"].item() == b"mridiff"
    assert img.header["aux_file"].item() == b"" and img.header["db_name"].item() == b""
    raw = gzip.decompress(out.read_bytes()) if suffix == ".nii.gz" else out.read_bytes()
    assert b"John" not in raw and b"MRN12345" not in raw
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([nifti_file.name, f"out{suffix}"])  # no temp files


def test_write_refuses_overwrite_and_bad_suffix(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    out = write_nifti(tmp_path / "a.nii.gz", data, np.eye(4))
    before = out.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_nifti(out, data * 3, np.eye(4))
    assert out.read_bytes() == before
    write_nifti(out, data * 3, np.eye(4), overwrite=True)
    np.testing.assert_allclose(read_nifti(out).data, 3.0)
    with pytest.raises(InputError, match=r"\.nii"):
        write_nifti(tmp_path / "a.png", data, np.eye(4))
    with pytest.raises(InputError, match="affine"):
        write_nifti(tmp_path / "b.nii", data, np.full((4, 4), np.nan))


def test_4d_requires_volume_index(tmp_path):
    data = np.stack([np.full((6, 5, 4), v, np.float32) for v in (1.0, 2.0, 3.0)], axis=-1)
    path = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    with pytest.raises(InputError, match="4D") as err:
        read_nifti(path)
    assert str(path) in str(err.value)
    vol = read_nifti(path, volume_index=1)
    assert vol.data.shape == (6, 5, 4) and np.all(vol.data == 2.0)
    assert read_nifti(path, volume_index=-1).data[0, 0, 0] == 3.0
    with pytest.raises(InputError, match="out of range"):
        read_nifti(path, volume_index=3)


def test_trailing_singleton_dimension_is_3d(tmp_path):
    path = tmp_path / "one.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.float32), np.eye(4)), path)
    assert read_nifti(path).data.shape == (4, 5, 6)


@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4, 2, 3)])
def test_wrong_dimensionality_raises(tmp_path, shape):
    path = tmp_path / f"bad{len(shape)}d.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="dimensions") as err:
        read_nifti(path)
    assert err.value.path == str(path)


def test_non_finite_affine_raises(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4, 4, 4))
    hdr.set_data_dtype(np.float32)
    hdr["srow_x"] = [1.0, 0.0, 0.0, np.nan]
    hdr["srow_y"] = [0.0, 1.0, 0.0, 0.0]
    hdr["srow_z"] = [0.0, 0.0, 1.0, 0.0]
    hdr["sform_code"], hdr["qform_code"] = 1, 0
    path = tmp_path / "nan_affine.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), None, header=hdr), path)
    with pytest.raises(InputError, match="affine") as err:
        read_nifti(path)
    assert err.value.path == str(path)


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "not_gzip", "empty"])
def test_corrupt_files_raise(nifti_file, tmp_path, damage):
    raw = nifti_file.read_bytes()
    path = tmp_path / f"{damage}.nii.gz"
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip_bytes":
        mid = len(raw) // 2
        path.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 64]) + raw[mid + 64 :])
    elif damage == "not_gzip":
        path.write_bytes(b"hello, not a gzip stream" * 20)
    else:
        path.touch()
    with pytest.raises(InputError) as err:
        read_nifti(path)
    assert err.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_nifti(tmp_path / "nope.nii.gz")


def test_non_finite_voxels_warn_and_zero(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[1, 1, 1] = np.nan
    path = tmp_path / "nanvox.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.warns(UserWarning, match="non-finite"):
        vol = read_nifti(path)
    assert vol.data[1, 1, 1] == 0.0


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_slice_and_stack_are_inverse(axis):
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    slices = slice_volume(vol, axis)
    assert slices.shape[0] == vol.shape[axis]
    np.testing.assert_array_equal(slices[2], np.take(vol, 2, axis=axis))
    np.testing.assert_array_equal(stack_slices(list(slices), axis), vol)


def test_canonical_orientation(tmp_path, nifti_file):
    vol = read_nifti(nifti_file, canonical=True)
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(img, filename):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_nifti(tmp_path / "x.nii.gz", np.ones((3, 3, 3), np.float32), np.eye(4))
    assert list(tmp_path.iterdir()) == []

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset

from mridiff.data.fastmri_h5 import open_scan, read_slice, sanitise_attrs
from mridiff.errors import InputError

RNG = np.random.default_rng(0)


def ck(shape: tuple[int, ...]) -> np.ndarray:
    return (RNG.normal(size=shape) + 1j * RNG.normal(size=shape)).astype(np.complex64)


@pytest.mark.parametrize("layout", ["singlecoil", "multicoil"])
def test_reader_agrees_with_fastmri_slicedataset(fastmri_mock_dataset, layout):
    root = fastmri_mock_dataset[layout]
    ds = SliceDataset(root, challenge=layout, transform=None)
    assert len(ds) == 3 + 4
    infos = {p.name: open_scan(p) for p in sorted(root.glob("*.h5"))}
    for i in range(len(ds)):
        kspace, mask, target, attrs, fname, dataslice = ds[i]
        info = infos[fname]
        got = read_slice(info, dataslice)
        assert info.multicoil == (layout == "multicoil")
        assert got.kspace.dtype == np.complex64 and got.kspace.shape == kspace.shape
        np.testing.assert_array_equal(got.kspace, kspace)
        np.testing.assert_array_equal(got.target, target)
        assert mask is None and got.mask is None
        assert info.encoded_size == tuple(attrs["encoding_size"][:2])
        assert info.recon_size == tuple(attrs["recon_size"][:2])
        assert info.target_shape == target.shape
        for key in ("max", "norm", "acquisition"):
            assert info.attrs[key] == attrs[key]
        assert info.acquisition == "AXT1"
        assert info.fov_mm == (220.0, 220.0, 5.0)
        assert info.num_slices == sum(1 for s in ds.raw_samples if s.fname.name == fname)


def test_reader_masked_test_files(fastmri_mock_dataset):
    root = fastmri_mock_dataset["singlecoil_test"]
    ds = SliceDataset(root, challenge="singlecoil")
    kspace, mask, target, attrs, fname, dataslice = ds[0]
    info = open_scan(root / fname)
    got = read_slice(info, dataslice)
    assert target is None and got.target is None and info.target_key is None
    h, w = kspace.shape
    assert got.mask.shape == (h, w) and got.mask.dtype == np.float32
    np.testing.assert_array_equal(got.mask, np.broadcast_to(mask.astype(np.float32), (h, w)))
    assert info.attrs["acceleration"] == 4 and info.attrs["num_low_frequency"] == 2
    assert info.acquisition == "CORPD_FBK"


def test_reads_one_slice_without_loading_volume(fastmri_h5_factory, monkeypatch):
    path = fastmri_h5_factory("a.h5", ck((5, 3, 16, 12)), target=np.ones((5, 8, 8), np.float32))
    info = open_scan(path)
    seen = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        seen.append((self.name, key))
        return orig(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    read_slice(info, 3)
    assert ("/kspace", 3) in seen and ("/reconstruction_rss", 3) in seen
    assert all(key == 3 for name, key in seen if name in ("/kspace", "/reconstruction_rss"))


def test_opens_read_only_file_and_leaves_it_unchanged(fastmri_h5_factory):
    path = fastmri_h5_factory("ro.h5", ck((2, 8, 8)))
    before = path.read_bytes()
    os.chmod(path, 0o444)
    try:
        read_slice(open_scan(path), 1)
    finally:
        os.chmod(path, 0o644)
    assert path.read_bytes() == before


def test_negative_and_out_of_range_index(fastmri_h5_factory):
    k = ck((3, 8, 8))
    info = open_scan(fastmri_h5_factory("i.h5", k))
    np.testing.assert_array_equal(read_slice(info, -1).kspace, k[2])
    with pytest.raises(IndexError):
        read_slice(info, 3)


def _bad_files(tmp: Path, write_fastmri_h5) -> dict[str, Path]:
    files: dict[str, Path] = {}
    files["not_hdf5"] = tmp / "not_hdf5.h5"
    files["not_hdf5"].write_text("this is not an HDF5 file\n" * 10)
    files["empty"] = tmp / "empty.h5"
    files["empty"].touch()
    good = write_fastmri_h5(tmp / "good.h5", ck((4, 32, 32)))
    data = good.read_bytes()
    files["truncated"] = tmp / "truncated.h5"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["missing_kspace"] = write_fastmri_h5(tmp / "nok.h5", None, target=np.ones((2, 4, 4), np.float32))
    files["real_kspace"] = write_fastmri_h5(tmp / "real.h5", np.ones((2, 8, 8), np.float32))
    files["int_kspace"] = write_fastmri_h5(tmp / "int.h5", np.ones((2, 8, 8), np.int16))
    files["2d_kspace"] = write_fastmri_h5(tmp / "k2d.h5", ck((8, 8)))
    files["5d_kspace"] = write_fastmri_h5(tmp / "k5d.h5", ck((2, 2, 2, 8, 8)))
    nan = ck((2, 8, 8))
    nan[0, 3, 3] = np.nan
    files["nan"] = write_fastmri_h5(tmp / "nan.h5", nan)
    inf = ck((2, 2, 8, 8))
    inf[0, 1, 0, 0] = np.inf
    files["inf"] = write_fastmri_h5(tmp / "inf.h5", inf)
    files["all_zero"] = write_fastmri_h5(tmp / "zero.h5", np.zeros((2, 8, 8), np.complex64))
    files["mask_mismatch"] = write_fastmri_h5(tmp / "mask.h5", ck((2, 8, 8)), mask=np.ones(7, bool))
    files["mask_2d_mismatch"] = write_fastmri_h5(tmp / "mask2.h5", ck((2, 8, 8)), mask=np.ones((8, 6), bool))
    files["target_slices"] = write_fastmri_h5(tmp / "tgt.h5", ck((3, 8, 8)), target=np.ones((2, 8, 8), np.float32))
    return files


BAD = [
    ("not_hdf5", "not an HDF5 file"),
    ("empty", "empty"),
    ("truncated", "truncated"),
    ("missing_kspace", "no 'kspace'"),
    ("real_kspace", "real-valued"),
    ("int_kspace", "integer"),
    ("2d_kspace", "2 dimensions"),
    ("5d_kspace", "5 dimensions"),
    ("nan", "NaN"),
    ("inf", "Inf"),
    ("all_zero", "all zeros"),
    ("mask_mismatch", "mask shape"),
    ("mask_2d_mismatch", "mask shape"),
    ("target_slices", "slices"),
]


@pytest.mark.parametrize(("case", "problem"), BAD)
def test_bad_inputs_raise_input_error_naming_file(tmp_path, data_helpers, case, problem):
    path = _bad_files(tmp_path, data_helpers.write_h5)[case]
    with pytest.raises(InputError) as err:
        info = open_scan(path)
        read_slice(info, 0)
    assert err.value.path == str(path)
    assert str(path) in err.value.message() and problem in err.value.message()
    assert "\n" not in err.value.message()


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_scan(tmp_path / "nope.h5")


def test_nan_in_later_slice_raises_on_read(fastmri_h5_factory):
    k = ck((3, 8, 8))
    k[2, 1, 1] = np.nan
    info = open_scan(fastmri_h5_factory("late_nan.h5", k))
    read_slice(info, 1)
    with pytest.raises(InputError, match="slice 2 contains NaN"):
        read_slice(info, 2)


@pytest.mark.parametrize("header", [b"<ismrmrdHeader><encoding>", b"\xff\xfe garbage", b"<a>no sizes</a>", None])
def test_malformed_or_missing_header_warns_and_falls_back(fastmri_h5_factory, header):
    path = fastmri_h5_factory("h.h5", ck((2, 2, 16, 12)), target=np.ones((2, 10, 10), np.float32), header=header)
    with pytest.warns(UserWarning, match="ismrmrd_header"):
        info = open_scan(path)
    assert info.encoded_size == (16, 12)
    assert info.recon_size == (10, 10)  # the stored target's shape
    assert info.fov_mm is None


def test_recon_larger_than_encoded_uses_smaller(fastmri_h5_factory, data_helpers):
    # fastMRI brain FLAIR files: reconSpace 320x320 while k-space has fewer than 320 columns.
    header = data_helpers.header((40, 18), (20, 20))
    path = fastmri_h5_factory("flair.h5", ck((2, 2, 40, 18)), header=header)
    with pytest.warns(UserWarning, match="exceeds encoded size"):
        info = open_scan(path)
    assert info.recon_size == (20, 18)


def test_good_file_opens_without_warnings(fastmri_mock_dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_scan(fastmri_mock_dataset["multicoil"] / "file0.h5")


def test_patient_identifiers_never_reach_attrs(fastmri_h5_factory):
    header = (
        b'<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        b"<subjectInformation><patientName>Doe^John</patientName><patientID>MRN12345</patientID>"
        b"<patientBirthdate>1970-01-01</patientBirthdate><patientWeight_kg>80</patientWeight_kg>"
        b"</subjectInformation><studyInformation><studyDate>2020-02-02</studyDate>"
        b"<referringPhysicianName>Dr Who</referringPhysicianName></studyInformation>"
        b"<encoding><encodedSpace><matrixSize><x>8</x><y>8</y><z>1</z></matrixSize></encodedSpace>"
        b"<reconSpace><matrixSize><x>8</x><y>8</y><z>1</z></matrixSize></reconSpace></encoding></ismrmrdHeader>"
    )
    attrs = {
        "patient_name": "Doe^John",
        "patient_id": "MRN12345",
        "PatientID": 12345,
        "birth_date": "1970-01-01",
        "study_date": 20200202,
        "referring_physician": "Dr Who",
        "patient_age": 50,
        "age": 50,
        "max": 1.5,
        "norm": 9.0,
        "acquisition": "AXT1",
        "some_text": "free text might hold anything",
        "flip_angle": 12.0,
    }
    info = open_scan(fastmri_h5_factory("phi.h5", ck((2, 8, 8)), header=header, attrs=attrs))
    assert set(info.attrs) == {"max", "norm", "acquisition", "flip_angle"}
    text = repr(info).lower()
    for secret in ("doe", "mrn12345", "1970", "2020", "dr who", "12345"):
        assert secret not in text
    assert info.recon_size == (8, 8)


def test_sanitise_attrs_plain_dict():
    out = sanitise_attrs({"acquisition": b"AXFLAIR", "max": np.float32(2.0), "subject_id": 3, "scan_time": 4.0})
    assert out == {"acquisition": "AXFLAIR", "max": 2.0}


# ------------------------------------------------- data from outside the file: external storage, links, VDS


def _outside(tmp_path: Path, how: str, name: str, data: np.ndarray) -> None:
    """Write ``data`` so that dataset ``name`` of ``scan.h5`` reads it from outside the file, in way ``how``."""
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "a") as hf:
        hf.create_dataset(name, data=data)
    with h5py.File(tmp_path / "scan.h5", "a") as hf:
        if how == "external_storage":
            raw = tmp_path / f"{name}.raw"
            raw.write_bytes(np.ascontiguousarray(data).tobytes())
            hf.create_dataset(name, shape=data.shape, dtype=data.dtype, external=[(str(raw), 0, data.nbytes)])
        elif how == "external_link":
            hf[name] = h5py.ExternalLink(str(other), f"/{name}")
        elif how == "virtual":
            layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
            layout[...] = h5py.VirtualSource(str(other), name, shape=data.shape)
            hf.create_virtual_dataset(name, layout)
        else:  # a soft link to a dataset elsewhere in the same file
            hf.create_dataset(f"hidden_{name}", data=data)
            hf[name] = h5py.SoftLink(f"/hidden_{name}")


HOW = {"external_storage": "external raw files", "external_link": "external link", "virtual": "virtual dataset",
       "soft_link": "soft or user-defined link"}


@pytest.mark.parametrize("how", list(HOW))
@pytest.mark.parametrize("name", ["kspace", "mask", "reconstruction_rss", "sens_maps", "ismrmrd_header"])
def test_data_stored_outside_the_file_is_refused(tmp_path, data_helpers, how, name):
    k = ck((2, 3, 16, 12))
    pieces = {"kspace": k, "mask": np.ones(12, np.float32), "reconstruction_rss": np.ones((2, 16, 12), np.float32),
              "sens_maps": k, "ismrmrd_header": np.frombuffer(data_helpers.header((16, 12), (16, 12)), np.uint8)}
    with h5py.File(tmp_path / "scan.h5", "w") as hf:
        for key, value in pieces.items():
            if key == "ismrmrd_header" and key != name:
                hf.create_dataset(key, data=np.bytes_(value.tobytes()))
            elif key != name:
                hf.create_dataset(key, data=value)
    _outside(tmp_path, how, name, pieces[name])
    with pytest.raises(InputError) as err:
        read_slice(open_scan(tmp_path / "scan.h5"), 0)
    msg = err.value.message()
    assert err.value.path == str(tmp_path / "scan.h5") and f"'{name}'" in msg and HOW[how] in msg, msg
    assert "elsewhere" not in msg and ".raw" not in msg and "\n" not in msg  # the link target is never echoed


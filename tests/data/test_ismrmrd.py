from __future__ import annotations

import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset
from fastmri.data.mri_data import et_query

from mridiff.data.ismrmrd import build_header, parse_header


def test_build_parse_round_trip():
    xml = build_header((640, 368), (320, 320), (440.0, 253.0, 5.0))
    hdr = parse_header(xml)
    assert hdr is not None
    assert hdr.encoded_size == (640, 368, 1) and hdr.recon_size == (320, 320, 1)
    assert hdr.encoded_fov_mm == (440.0, 253.0, 5.0)
    assert hdr.recon_fov_mm == pytest.approx((220.0, 220.0, 5.0))
    assert (hdr.enc_limits_center, hdr.enc_limits_max) == (184, 367)
    assert hdr.fastmri_padding() == (0, 368)


def test_fastmri_queries_read_built_header():
    root = ET.fromstring(build_header((64, 48), (32, 32), (200.0, 150.0, 3.0), enc_limits_center=25))
    enc = ["encoding", "encodedSpace", "matrixSize"]
    rec = ["encoding", "reconSpace", "matrixSize"]
    lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
    assert [int(et_query(root, enc + [a])) for a in "xyz"] == [64, 48, 1]
    assert [int(et_query(root, rec + [a])) for a in "xyz"] == [32, 32, 1]
    assert int(et_query(root, lims + ["center"])) == 25
    assert int(et_query(root, lims + ["maximum"])) == 47


def test_slicedataset_metadata_matches_parse(tmp_path):
    xml = build_header((32, 24), (16, 16), (100.0, 75.0, 2.0), enc_limits_center=13, enc_limits_max=21)
    with h5py.File(tmp_path / "f.h5", "w") as hf:
        hf["kspace"] = np.ones((2, 32, 24), np.complex64)
        hf["ismrmrd_header"] = np.bytes_(xml)
    ds = SliceDataset(tmp_path, challenge="singlecoil")
    meta = ds[0][3]
    hdr = parse_header(xml)
    assert meta["encoding_size"] == hdr.encoded_size
    assert meta["recon_size"] == hdr.recon_size
    assert (meta["padding_left"], meta["padding_right"]) == hdr.fastmri_padding()


def test_header_carries_no_subject_information():
    text = build_header((8, 8), (8, 8), (1.0, 1.0, 1.0)).decode()
    for tag in ("subjectInformation", "studyInformation", "measurementInformation", "patient"):
        assert tag not in text


@pytest.mark.parametrize(
    "xml",
    [
        None,
        b"",
        b"<ismrmrdHeader",
        b"<root><encoding><encodedSpace><matrixSize><x>8</x></matrixSize></encodedSpace></encoding></root>",
        b"<r><encoding><encodedSpace><matrixSize><x>a</x><y>2</y><z>1</z></matrixSize></encodedSpace>"
        b"<reconSpace><matrixSize><x>1</x><y>2</y><z>1</z></matrixSize></reconSpace></encoding></r>",
    ],
)
def test_malformed_returns_none(xml):
    assert parse_header(xml) is None


def test_header_without_namespace_parses():
    xml = (
        "<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>10</x><y>6</y><z>1</z></matrixSize></encodedSpace>"
        "<reconSpace><matrixSize><x>5</x><y>5</y><z>1</z></matrixSize></reconSpace></encoding></ismrmrdHeader>"
    )
    hdr = parse_header(xml)
    assert hdr is not None and hdr.encoded_size == (10, 6, 1) and hdr.fastmri_padding() is None

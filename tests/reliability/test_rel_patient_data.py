"""Issue 6.5: patient identifiers in a scan's attributes and ISMRMRD header never reach any output.

Every output file is searched after undoing its encodings (gzip for NIfTI, the zlib streams and text chunks of
PNG, HDF5 strings and attributes), and the search itself is checked on files that do carry the identifiers.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import bad_inputs as bi
import h5py
import nibabel as nib
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import pytest

from mridiff.data.ismrmrd import build_header

VARIANTS = tuple(s.encode() for s in bi.PATIENT_STRINGS) + (b"DOE", b"JANE", b"998877", b"19610203")


def _png_streams(raw: bytes) -> list[bytes]:
    """Every chunk's payload, with IDAT joined and decompressed, and zTXt/iTXt text decompressed."""
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out, idat = 8, [], b""
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, data = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        pos += 12 + length
        out.append(data)
        if kind == b"IDAT":
            idat += data
        elif kind == b"zTXt":
            out.append(zlib.decompress(data.split(b"\x00", 1)[1][1:]))
        elif kind == b"iTXt":
            rest = data.split(b"\x00", 1)[1]
            text = rest[2:].split(b"\x00", 2)[2]  # after language tag and translated keyword
            out.append(zlib.decompress(text) if rest[0] else text)
    if idat:
        out.append(zlib.decompress(idat))
    return out


def _h5_strings(path: Path) -> list[bytes]:
    out: list[bytes] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        out.append(name.encode())
        out.extend(f"{k}={v!r}".encode() for k, v in obj.attrs.items())
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "SOU":
            out.append(np.asarray(obj[()]).tobytes())

    with h5py.File(path, "r") as hf:
        out.extend(f"{k}={v!r}".encode() for k, v in hf.attrs.items())
        hf.visititems(visit)
    return out


def searchable(path: Path) -> list[bytes]:
    """The raw bytes of ``path`` plus every decoded form a reader could see."""
    raw = path.read_bytes()
    parts = [raw]
    if raw[:2] == b"\x1f\x8b":
        parts.append(gzip.decompress(raw))
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        parts.extend(_png_streams(raw))
    if raw[:8] == b"\x89HDF\r\n\x1a\n":
        parts.extend(_h5_strings(path))
    return parts


def found(path: Path) -> set[bytes]:
    """Which identifier variants occur in ``path`` (any case)."""
    blobs = [b.lower() for b in searchable(path)]
    return {v for v in VARIANTS if any(v.lower() in b for b in blobs)}


def write_identified_scan(path: Path) -> Path:
    """A good scan whose attributes and ismrmrd_header carry a name, an ID and a birth date."""
    bi.write_good_scan(path)
    header = build_header((bi.SIZE, bi.SIZE), (bi.SIZE, bi.SIZE), bi.FOV_MM).decode()
    at = header.index(">", header.index("<ismrmrdHeader")) + 1
    header = header[:at] + bi.PATIENT_XML + header[at:]
    with h5py.File(path, "a") as hf:
        del hf["ismrmrd_header"]
        hf.create_dataset("ismrmrd_header", data=np.bytes_(header.encode()))
        hf.attrs["PatientName"] = "DOE^JANE"
        hf.attrs["patient_id"] = "MRN-998877"
        hf.attrs["PatientBirthDate"] = "1961-02-03"
        hf.attrs["comment"] = "scan of DOE^JANE, MRN-998877"  # innocent key, identifying value
        hf.attrs["acquisition"] = "AXT1"
    return path


def test_search_finds_identifiers_where_they_are(tmp_path: Path) -> None:
    """Control: each decoder sees identifiers that are really there (so an empty result below means something)."""
    scan = write_identified_scan(tmp_path / "in.h5")
    assert found(scan) == set(VARIANTS) - {b"19610203"}

    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    img.header["descrip"] = b"DOE^JANE"
    nib.save(img, tmp_path / "x.nii.gz")
    assert b"DOE^JANE" in found(tmp_path / "x.nii.gz")

    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("Comment", "MRN-998877", zip=True)
    PIL.Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png", pnginfo=info)
    assert b"MRN-998877" in found(tmp_path / "x.png")


def test_no_identifier_reaches_any_output(tmp_path: Path, run_recon: Callable[..., bi.Outcome]) -> None:
    scan = write_identified_scan(tmp_path / "scan_0001.h5")
    out = tmp_path / "out"
    outcome = run_recon([scan], out, "--samples", "2")
    assert outcome.exit_code == 0, outcome.stderr

    files = sorted(p for p in out.rglob("*") if p.is_file())
    suffixes = {"".join(p.suffixes) for p in files}
    assert suffixes == {".h5", ".nii.gz", ".png", ".json", ".log"}  # every kind of output was written and is checked
    leaks = {str(p.relative_to(out)): found(p) for p in files}
    assert all(not hits for hits in leaks.values()), leaks
    for stream in (outcome.stdout, outcome.stderr):
        assert not any(v.decode().lower() in stream.lower() for v in VARIANTS)


@pytest.mark.parametrize("key", ["PatientName", "patient_id", "PatientBirthDate", "comment"])
def test_identifying_attributes_are_not_copied(tmp_path: Path, run_recon: Callable[..., bi.Outcome],
                                               key: str) -> None:
    scan = write_identified_scan(tmp_path / "scan.h5")
    assert run_recon([scan], tmp_path / "out").exit_code == 0
    with h5py.File(tmp_path / "out" / "reconstructions" / "scan.h5", "r") as hf:
        assert key not in hf.attrs and set(hf.keys()) == {"reconstruction"}

"""Build and parse the ``ismrmrd_header`` XML that fastMRI files carry.

fastMRI's ``SliceDataset._retrieve_metadata`` reads the encoded and reconstructed matrix sizes and the
``kspace_encoding_step_1`` limits from this header with namespaced ElementTree queries. :func:`build_header`
writes the minimal schema-conforming document that those queries (and :func:`parse_header`) understand; it never
writes subject, study or measurement information.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"

Triple = tuple[int, int, int]
FloatTriple = tuple[float, float, float]


@dataclass(frozen=True)
class IsmrmrdHeader:
    """The parts of an ISMRMRD header that mridiff uses.

    Attributes:
        encoded_size: ``encodedSpace/matrixSize`` as ``(x, y, z)``; x = rows H (readout), y = columns W.
        recon_size: ``reconSpace/matrixSize`` as ``(x, y, z)``.
        encoded_fov_mm: ``encodedSpace/fieldOfView_mm`` as ``(x, y, z)``, or ``None`` when absent.
        recon_fov_mm: ``reconSpace/fieldOfView_mm`` as ``(x, y, z)``, or ``None`` when absent.
        enc_limits_center: ``encodingLimits/kspace_encoding_step_1/center``, or ``None`` when absent.
        enc_limits_max: ``encodingLimits/kspace_encoding_step_1/maximum`` (inclusive index), or ``None``.

    """

    encoded_size: Triple
    recon_size: Triple
    encoded_fov_mm: FloatTriple | None = None
    recon_fov_mm: FloatTriple | None = None
    enc_limits_center: int | None = None
    enc_limits_max: int | None = None

    def fastmri_padding(self) -> tuple[int, int] | None:
        """Return fastMRI's ``(padding_left, padding_right)`` for this header, or ``None`` without limits."""
        if self.enc_limits_center is None or self.enc_limits_max is None:
            return None
        left = self.encoded_size[1] // 2 - self.enc_limits_center
        return left, left + self.enc_limits_max + 1


def _fmt(value: float) -> str:
    return f"{float(value):.6g}"


def build_header(
    encoded_size: tuple[int, int],
    recon_size: tuple[int, int],
    encoded_fov_mm: FloatTriple,
    recon_fov_mm: FloatTriple | None = None,
    *,
    field_strength_t: float = 3.0,
    enc_limits_center: int | None = None,
    enc_limits_max: int | None = None,
) -> bytes:
    """Build a fastMRI-style ISMRMRD header for a 2D Cartesian acquisition.

    Args:
        encoded_size: ``(H, W)`` of the stored k-space: H readout rows, W phase-encode columns.
        recon_size: ``(h, w)`` of the reconstruction target.
        encoded_fov_mm: Field of view of the encoded grid ``(x, y, z)`` in mm (z = slice thickness).
        recon_fov_mm: Field of view of the reconstruction; defaults to ``encoded_fov_mm`` scaled by size.
        field_strength_t: Main field in tesla; sets the required ``H1resonanceFrequency_Hz``.
        enc_limits_center: Centre phase-encode line; defaults to ``W // 2`` (fully sampled, no padding).
        enc_limits_max: Last acquired phase-encode line (inclusive); defaults to ``W - 1``.

    Returns:
        UTF-8 XML bytes, as stored in the fastMRI ``ismrmrd_header`` dataset.

    """
    enc_h, enc_w = (int(v) for v in encoded_size)
    rec_h, rec_w = (int(v) for v in recon_size)
    if recon_fov_mm is None:
        recon_fov_mm = (
            encoded_fov_mm[0] * rec_h / enc_h,
            encoded_fov_mm[1] * rec_w / enc_w,
            encoded_fov_mm[2],
        )
    center = enc_w // 2 if enc_limits_center is None else int(enc_limits_center)
    maximum = enc_w - 1 if enc_limits_max is None else int(enc_limits_max)

    q = f"{{{ISMRMRD_NAMESPACE}}}"
    root = ET.Element(f"{q}ismrmrdHeader")
    cond = ET.SubElement(root, f"{q}experimentalConditions")
    ET.SubElement(cond, f"{q}H1resonanceFrequency_Hz").text = str(int(round(42.577478e6 * field_strength_t)))
    enc = ET.SubElement(root, f"{q}encoding")
    _space_ns(enc, q, "encodedSpace", (enc_h, enc_w, 1), encoded_fov_mm)
    _space_ns(enc, q, "reconSpace", (rec_h, rec_w, 1), recon_fov_mm)
    limits = ET.SubElement(enc, f"{q}encodingLimits")
    for name, (lo, hi, mid) in (
        ("kspace_encoding_step_0", (0, enc_h - 1, enc_h // 2)),
        ("kspace_encoding_step_1", (0, maximum, center)),
        ("slice", (0, 0, 0)),
    ):
        step = ET.SubElement(limits, f"{q}{name}")
        ET.SubElement(step, f"{q}minimum").text = str(lo)
        ET.SubElement(step, f"{q}maximum").text = str(hi)
        ET.SubElement(step, f"{q}center").text = str(mid)
    ET.SubElement(enc, f"{q}trajectory").text = "cartesian"
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=ISMRMRD_NAMESPACE))


def _space_ns(parent: ET.Element, q: str, tag: str, size: Triple, fov: FloatTriple) -> None:
    space = ET.SubElement(parent, f"{q}{tag}")
    matrix = ET.SubElement(space, f"{q}matrixSize")
    for axis, value in zip("xyz", size, strict=True):
        ET.SubElement(matrix, f"{q}{axis}").text = str(int(value))
    fov_el = ET.SubElement(space, f"{q}fieldOfView_mm")
    for axis, length in zip("xyz", fov, strict=True):
        ET.SubElement(fov_el, f"{q}{axis}").text = _fmt(length)


def _find_text(root: ET.Element, path: list[str]) -> str | None:
    # "{*}" matches any namespace (or none), so headers written without the ISMRMRD namespace parse too.
    query = ".//" + "/".join(f"{{*}}{tag}" for tag in path)
    el = root.find(query)
    if el is None or el.text is None:
        return None
    return el.text.strip()


def _floats(root: ET.Element, path: list[str]) -> FloatTriple | None:
    values = []
    for axis in "xyz":
        text = _find_text(root, [*path, axis])
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        values.append(value)
    return values[0], values[1], values[2]


def _ints(root: ET.Element, path: list[str]) -> Triple | None:
    values = _floats(root, path)
    if values is None or not all(v.is_integer() for v in values):
        return None
    return int(values[0]), int(values[1]), int(values[2])


def parse_header(xml: bytes | str | None) -> IsmrmrdHeader | None:
    """Parse an ISMRMRD header; return ``None`` when it is missing, malformed or lacks the matrix sizes.

    The caller decides what to do with ``None`` (mridiff's reader warns and falls back to the k-space shape).

    Args:
        xml: The header XML as stored in the HDF5 file.

    Returns:
        The parsed header, or ``None``.

    """
    if xml is None:
        return None
    try:
        root = ET.fromstring(xml)
    except (ET.ParseError, ValueError, TypeError):
        return None
    enc = _ints(root, ["encoding", "encodedSpace", "matrixSize"])
    rec = _ints(root, ["encoding", "reconSpace", "matrixSize"])
    if enc is None or rec is None or min(enc) < 1 or min(rec) < 1:
        return None
    enc_fov = _floats(root, ["encoding", "encodedSpace", "fieldOfView_mm"])
    rec_fov = _floats(root, ["encoding", "reconSpace", "fieldOfView_mm"])
    limits = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
    center_text = _find_text(root, [*limits, "center"])
    max_text = _find_text(root, [*limits, "maximum"])
    try:
        center = None if center_text is None else int(center_text)
        maximum = None if max_text is None else int(max_text)
    except ValueError:
        center = maximum = None
    return IsmrmrdHeader(
        encoded_size=enc,
        recon_size=rec,
        encoded_fov_mm=enc_fov,
        recon_fov_mm=rec_fov,
        enc_limits_center=center,
        enc_limits_max=maximum,
    )

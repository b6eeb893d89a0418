"""NIfTI input and output: one 3D volume in, slices out, and an atomic writer that keeps the geometry.

The writer builds a fresh header: it keeps the affine (so qform/sform and the voxel sizes), the spatial units and
the intent codes, and never copies free-text fields (``descrip``, ``aux_file``, ``db_name``, ``intent_name``) from an
input header, since those may carry patient information.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError,
                nib.spatialimages.HeaderDataError, nib.orientations.OrientationError)


@dataclass(frozen=True)
class NiftiVolume:
    """A 3D volume read from a NIfTI file.

    Attributes:
        data: float32 ``(X, Y, Z)`` voxel values (scaling applied).
        affine: float64 ``(4, 4)`` voxel-to-world (RAS mm) matrix.
        header: The image header as read (for reference; :func:`write_nifti` copies only geometry from it).
        zooms: Voxel sizes in mm ``(x, y, z)``.
        path: The file it came from.

    """

    data: np.ndarray
    affine: np.ndarray
    header: Any
    zooms: tuple[float, float, float]
    path: Path | None = None


def _nifti_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in NIFTI_SUFFIXES if name.endswith(s)), None)


def _check_gzip_stream(path: Path) -> None:
    """Decompress a gzip file to its end so its CRC is verified (nibabel stops reading before the trailer)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return
    with gzip.open(path, "rb") as gz:
        while gz.read(1 << 22):
            pass


def read_nifti(path: str | os.PathLike[str], volume_index: int | None = None, canonical: bool = False) -> NiftiVolume:
    """Read one 3D volume from a NIfTI (or other nibabel-readable) file.

    Args:
        path: The image file (``.nii``, ``.nii.gz``, ...).
        volume_index: Which volume of a 4D image to read; required when the 4th dimension is longer than 1.
        canonical: Reorient to the closest RAS+ orientation first (``nibabel.as_closest_canonical``).

    Returns:
        The volume; non-finite voxels are replaced by 0 with a warning.

    Raises:
        InputError: If the file is missing, unreadable or corrupt (e.g. a damaged gzip stream), is not 3D or 4D,
            has a non-finite or singular affine, or ``volume_index`` is missing or out of range.

    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a NIfTI file")
    try:
        _check_gzip_stream(p)
        img: Any = nib.load(p)
        if canonical:
            img = nib.as_closest_canonical(img)
        shape = tuple(int(d) for d in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except _READ_ERRORS as exc:
        raise InputError(p, f"cannot read image ({type(exc).__name__}: {exc})",
                         "the file is damaged or not NIfTI; copy or export it again") from None
    # Trailing singleton dimensions (X, Y, Z, 1) are common; drop them before judging dimensionality.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        raise InputError(p, f"image has {len(shape)} dimensions {tuple(img.shape)}", "expected a 3D or 4D volume")
    if min(shape) < 1:
        raise InputError(p, f"image has an empty dimension {tuple(img.shape)}")
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(p, "affine is not finite", "the file's qform/sform is damaged")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(p, "affine is singular (zero voxel size)")
    if len(shape) == 4:
        if volume_index is None:
            raise InputError(p, f"4D image with {shape[3]} volumes", "choose one with volume_index / --volume")
        if not -shape[3] <= volume_index < shape[3]:
            raise InputError(p, f"volume index {volume_index} out of range for {shape[3]} volumes")
    try:
        if len(shape) == 4:
            # Index the proxy so only the chosen volume is read from an uncompressed file.
            raw = np.asanyarray(img.dataobj[(slice(None),) * 3 + (volume_index,)]).reshape(shape[:3])
        else:
            raw = np.asanyarray(img.dataobj).reshape(shape)
        if np.iscomplexobj(raw) or raw.dtype.kind not in "biuf":
            raise InputError(p, f"unsupported voxel type {raw.dtype}", "expected a real-valued image")
        data = np.asarray(raw, dtype=np.float32)
    except _READ_ERRORS as exc:
        raise InputError(p, f"cannot read voxel data, file truncated or corrupt ({type(exc).__name__})",
                         "copy or export it again") from None
    bad = ~np.isfinite(data)
    if bad.any():
        warnings.warn(f"{p}: {int(bad.sum())} non-finite voxels set to 0", stacklevel=2)
        data = np.where(bad, np.float32(0.0), data)
    zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return NiftiVolume(data=data, affine=affine, header=img.header, zooms=(zooms[0], zooms[1], zooms[2]), path=p)


def slice_volume(data: np.ndarray, axis: int) -> np.ndarray:
    """Return the 2D slices of a 3D volume along ``axis`` as ``(N, a, b)`` (a view).

    The two in-plane axes keep their order, so :func:`stack_slices` with the same axis inverts this exactly.

    Args:
        data: ``(X, Y, Z)`` volume.
        axis: 0, 1 or 2 (negative allowed).

    Returns:
        ``(N, a, b)`` where N is the length of ``axis``.

    """
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {data.shape}")
    return np.moveaxis(data, axis, 0)


def stack_slices(slices: Sequence[np.ndarray] | np.ndarray, axis: int) -> np.ndarray:
    """Stack 2D slices back into a 3D volume along ``axis`` (inverse of :func:`slice_volume`).

    Args:
        slices: ``N`` arrays ``(a, b)`` or one ``(N, a, b)`` array.
        axis: Where the slice index goes in the output.

    Returns:
        The 3D volume.

    """
    return np.stack(list(slices), axis=axis)


def write_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    header: Any = None,
    overwrite: bool = False,
    descrip: str = "mridiff",
) -> Path:
    """Write a volume to ``.nii`` / ``.nii.gz`` atomically, keeping the geometry and no free-text fields.

    Args:
        path: Output file; must end in ``.nii`` or ``.nii.gz`` (which sets compression).
        data: 2D-4D real array; stored as float32 (or its own dtype when integer/float already).
        affine: ``(4, 4)`` voxel-to-world matrix; sets qform/sform and the voxel sizes.
        header: Optional input header; only its spatial/temporal units, qform/sform codes and intent code are
            copied. Units the header leaves unknown (and all units without a header) are written as mm and s.
        overwrite: Replace an existing file.
        descrip: Text for the header's ``descrip`` field (at most 80 characters).

    Returns:
        The written path.

    Raises:
        InputError: If the suffix is wrong, the affine is not a finite 4x4, or the output exists without
            ``overwrite``.

    """
    out = Path(path)
    suffix = _nifti_suffix(out)
    if suffix is None:
        raise InputError(out, "output must end in .nii or .nii.gz")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise InputError(out, "affine must be a finite 4x4 matrix")
    arr = np.asarray(data)
    if np.iscomplexobj(arr):
        raise InputError(out, "cannot write complex data to NIfTI; write the magnitude")
    if arr.dtype.kind not in "biuf" or arr.dtype == np.float64 or arr.dtype.kind == "b":
        arr = arr.astype(np.float32)

    hdr = nib.Nifti1Header()
    qcode, scode = 1, 1
    if header is not None and isinstance(header, nib.Nifti1Header):
        qcode = int(header["qform_code"]) or 1
        scode = int(header["sform_code"]) or 1
        hdr.set_xyzt_units(*header.get_xyzt_units())
        hdr.set_intent(int(header["intent_code"]), allow_unknown=True)
    if hdr.get_xyzt_units()[0] == "unknown":  # the affine is in mm (NIfTI's RAS+ world); say so
        hdr.set_xyzt_units("mm", hdr.get_xyzt_units()[1] if hdr.get_xyzt_units()[1] != "unknown" else "sec")
    img = nib.Nifti1Image(arr, aff, header=hdr)
    img.set_qform(aff, code=qcode)
    img.set_sform(aff, code=scode)
    img.header.set_data_dtype(arr.dtype)
    img.header["descrip"] = descrip.encode("ascii", errors="replace")[:80]

    with atomic_path(out, overwrite) as tmp:
        # nibabel picks the format (and gzip) from the name, so save under the right suffix beside the output.
        tmp_nii = tmp.with_name(tmp.name + suffix)
        try:
            nib.save(img, tmp_nii)
            os.replace(tmp_nii, tmp)
        finally:
            if tmp_nii.exists():
                tmp_nii.unlink()
    return out

"""Lazy reader for fastMRI-layout HDF5 files, one slice at a time.

Layout (as the fastMRI data and ``fastmri.data.SliceDataset``): ``kspace`` complex ``(S, H, W)`` single-coil or
``(S, C, H, W)`` multi-coil; optional ``reconstruction_esc`` / ``reconstruction_rss`` float ``(S, h, w)``; optional
``mask`` ``(W,)`` or ``(H, W)``; ``ismrmrd_header`` XML; file attributes such as ``acquisition``, ``max``, ``norm``.

:func:`open_scan` validates the file cheaply (shapes, dtypes, the first slice) and never loads a whole volume;
:func:`read_slice` reopens the file read-only and reads one slice, so it is safe in DataLoader workers.

Only data stored inside the file is read. HDF5 can make a dataset read from elsewhere: an external link (the name
points into another HDF5 file), external storage (the bytes live in raw files named in the dataset, e.g.
``/etc/passwd``) and virtual datasets (VDS, mapped from other files). A scan that used them could make mridiff
read, and write into its outputs, any file the user can read, or hang on a FIFO; every dataset the reader touches
(``kspace``, ``mask``, the targets, ``sens_maps``, ``ismrmrd_header``) is checked with :func:`stored_dataset` and
such files are refused before any data is read. Soft links are refused too (fastMRI files have none).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mridiff.data.attrs import sanitise_attrs
from mridiff.data.ismrmrd import parse_header
from mridiff.data.stored_mask import parse_mask
from mridiff.errors import InputError

TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
_RAW_KSPACE = "mridiff needs raw complex k-space in the fastMRI layout, not images"
_RECOPY = "copy or export the scan again"
_SELF_CONTAINED = "mridiff reads only data stored inside the file; export a self-contained file"
__all__ = ["TARGET_KEYS", "ScanInfo", "SliceData", "open_scan", "read_slice", "sanitise_attrs", "stored_dataset"]


@dataclass(frozen=True)
class ScanInfo:
    """What :func:`open_scan` learned about a file, without reading its volumes.

    Attributes:
        path: The file.
        num_slices: Number of slices S.
        multicoil: Whether k-space is ``(S, C, H, W)`` (else ``(S, H, W)``).
        kspace_shape: Shape of one k-space slice, ``(C, H, W)`` or ``(H, W)``.
        encoded_size: ``(H, W)`` of the k-space grid.
        recon_size: ``(h, w)`` of the reconstruction (from the header, at most ``encoded_size``).
        mask: float32 ``(H, W)`` 0/1 sampling mask from the file's ``mask`` dataset, or ``None`` (fully sampled).
        target_key: Name of the target dataset, or ``None`` when the file has none.
        attrs: Sanitised file attributes (no identifiers; see :func:`sanitise_attrs`).
        acquisition: ``attrs["acquisition"]`` (e.g. ``"AXT1"``, ``"CORPD_FBK"``), or ``None``.
        fov_mm: ``reconSpace/fieldOfView_mm`` ``(x, y, z)`` from the header, or ``None``.
        target_shape: ``(h, w)`` of the stored target slices, or ``None`` without a target.

    """

    path: Path
    num_slices: int
    multicoil: bool
    kspace_shape: tuple[int, ...]
    encoded_size: tuple[int, int]
    recon_size: tuple[int, int]
    mask: np.ndarray | None
    target_key: str | None
    attrs: dict[str, Any] = field(default_factory=dict)
    acquisition: str | None = None
    fov_mm: tuple[float, float, float] | None = None
    target_shape: tuple[int, int] | None = None

    @property
    def num_coils(self) -> int:
        """Number of coils (1 for single-coil files)."""
        return int(self.kspace_shape[0]) if self.multicoil else 1


@dataclass(frozen=True)
class SliceData:
    """One slice of a scan.

    Attributes:
        kspace: complex64 ``(C, H, W)`` (multi-coil) or ``(H, W)`` (single-coil), as stored.
        target: float32 ``(h, w)`` reconstruction target, or ``None``.
        mask: float32 ``(H, W)`` sampling mask, or ``None`` when the file has none.
        index: The slice index in the file.
        sens: complex ``(C, H, W)`` coil maps stored by ``data_prep`` (``sens_maps``), when asked for and present.

    """

    kspace: np.ndarray
    target: np.ndarray | None
    mask: np.ndarray | None
    index: int
    sens: np.ndarray | None = None


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a fastMRI .h5 file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty", "the copy is incomplete; copy or export the scan again")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError:
        is_hdf5 = False
    if not is_hdf5:
        raise InputError(path, "not an HDF5 file", "expected a fastMRI-layout .h5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"HDF5 file is truncated or corrupt ({exc})", _RECOPY) from None


def _has(hf: h5py.Group, name: str) -> bool:
    """Whether a link ``name`` exists in ``hf``, without following it (``name in hf`` would open an external file)."""
    return bool(hf.id.links.exists(name.encode()))


def stored_dataset(path: str | os.PathLike[str], hf: h5py.Group, name: str) -> h5py.Dataset | h5py.Group | None:
    """The object ``name`` of ``hf`` if its data lies inside this file; ``None`` when there is no such name.

    Checks the link without following it, then the dataset's storage, before any of its data is read.

    Args:
        path: The file, for messages.
        hf: The open file (or a group of it).
        name: A name directly inside ``hf`` (no ``/``).

    Returns:
        The dataset (or group: the caller says what it expected), or ``None``.

    Raises:
        InputError: For an external or soft link, a dataset with external storage or a virtual dataset.

    """
    if not _has(hf, name):
        return None
    kind = hf.id.links.get_info(name.encode()).type
    if kind == h5py.h5l.TYPE_EXTERNAL:
        raise InputError(path, f"'{name}' is an HDF5 external link to another file; refused", _SELF_CONTAINED)
    if kind != h5py.h5l.TYPE_HARD:
        raise InputError(path, f"'{name}' is an HDF5 soft or user-defined link, not data stored under that name; "
                         "refused", _SELF_CONTAINED)
    obj = hf[name]
    if isinstance(obj, h5py.Dataset):
        if obj.is_virtual:
            raise InputError(path, f"'{name}' is an HDF5 virtual dataset (VDS) mapped from other files; refused",
                             _SELF_CONTAINED)
        if obj.external:
            raise InputError(path, f"'{name}' keeps its data in external raw files (HDF5 external storage); refused",
                             _SELF_CONTAINED)
    return obj


@contextlib.contextmanager
def _damaged_as_input_error(path: Path) -> Iterator[None]:
    """Report damaged HDF5 metadata as an InputError.

    h5py raises RuntimeError, OSError or KeyError for damaged links and B-trees, and ValueError or TypeError for a
    damaged datatype message (e.g. "Insufficient precision in available types"); found by fuzzing.
    """
    try:
        yield
    except (RuntimeError, OSError, KeyError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"HDF5 file is truncated or corrupt ({detail})", _RECOPY) from None


def _check_slice(path: Path, kspace: np.ndarray, index: int) -> None:
    if not np.all(np.isfinite(kspace)):
        raise InputError(path, f"k-space slice {index} contains NaN or Inf", "the scan is damaged; export it again")
    if not np.any(kspace):
        raise InputError(path, f"k-space slice {index} is all zeros", "the scan is damaged; export it again")


def _read(path: Path, dataset: h5py.Dataset, index: int) -> np.ndarray:
    try:
        return np.asarray(dataset[index])
    except (OSError, ValueError, KeyError) as exc:  # h5py raises KeyError for some damaged chunk indexes
        problem = f"cannot read slice {index} of '{dataset.name}': file truncated or corrupt ({exc})"
        raise InputError(path, problem, _RECOPY) from None


def _kspace_layout(path: Path, hf: h5py.File) -> h5py.Dataset:
    ks = stored_dataset(path, hf, "kspace")
    if ks is None:
        found = ", ".join(sorted(map(str, hf.keys()))) or "nothing"  # damaged names come back as bytes
        raise InputError(path, "no 'kspace' dataset", f"found: {found}")
    if not isinstance(ks, h5py.Dataset):
        raise InputError(path, "'kspace' is a group, expected a dataset")
    kind = ks.dtype.kind
    if kind in "iub":
        raise InputError(path, f"k-space has integer dtype {ks.dtype}; expected complex64", _RAW_KSPACE)
    if kind != "c":
        raise InputError(path, f"k-space is real-valued ({ks.dtype}); expected complex64", _RAW_KSPACE)
    if ks.ndim not in (3, 4):
        raise InputError(
            path,
            f"k-space has {ks.ndim} dimensions {ks.shape}",
            "expected (slices, H, W) single-coil or (slices, coils, H, W) multi-coil",
        )
    if min(ks.shape) < 1:
        raise InputError(path, f"k-space has an empty dimension {ks.shape}")
    return ks


def _header_sizes(
    path: Path, hf: h5py.File, encoded: tuple[int, int], target_shape: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float, float] | None]:
    fallback = target_shape if target_shape is not None else encoded
    node = stored_dataset(path, hf, "ismrmrd_header")
    if node is None:
        warnings.warn(f"{path}: no ismrmrd_header; using recon size {fallback} from the data", stacklevel=3)
        return fallback, None
    try:
        raw = node[()] if isinstance(node, h5py.Dataset) else None
    except (OSError, TypeError, ValueError):
        raw = None
    header = parse_header(raw if isinstance(raw, bytes | str) else None)
    if header is None:
        warnings.warn(f"{path}: malformed ismrmrd_header; using recon size {fallback} from the data", stacklevel=3)
        return fallback, None
    if header.encoded_size[:2] != encoded:
        warnings.warn(
            f"{path}: header encoded size {header.encoded_size[:2]} differs from k-space {encoded}; using k-space",
            stacklevel=3,
        )
    recon = (header.recon_size[0], header.recon_size[1])
    if recon[0] > encoded[0] or recon[1] > encoded[1]:
        smaller = (min(recon[0], encoded[0]), min(recon[1], encoded[1]))
        warnings.warn(f"{path}: recon size {recon} exceeds encoded size {encoded}; using {smaller}", stacklevel=3)
        recon = smaller
    return recon, header.recon_fov_mm


def open_scan(path: str | os.PathLike[str]) -> ScanInfo:
    """Open a fastMRI-layout HDF5 file and validate it without loading its volumes.

    Args:
        path: The ``.h5`` file.

    Returns:
        A :class:`ScanInfo` describing the file.

    Raises:
        InputError: If the file is missing, empty, not HDF5, truncated, has no complex ``kspace`` of 3 or 4
            dimensions, has NaN/Inf or all-zero k-space in its first slice, a mask that does not match the
            k-space, or a target whose slice count or dtype is wrong.

    """
    p = Path(path)
    with _damaged_as_input_error(p), _open(p) as hf:
        ks = _kspace_layout(p, hf)
        num_slices = int(ks.shape[0])
        multicoil = ks.ndim == 4
        slice_shape = tuple(int(d) for d in ks.shape[1:])
        encoded = (slice_shape[-2], slice_shape[-1])
        _check_slice(p, _read(p, ks, 0), 0)

        order = TARGET_KEYS if multicoil else TARGET_KEYS[::-1]
        for key in (*TARGET_KEYS, "mask", "sens_maps"):  # also what is not used here (training reads sens_maps)
            stored_dataset(p, hf, key)
        target_key = next((k for k in order if _has(hf, k)), None)
        target_shape = None
        if target_key is not None:
            tgt = hf[target_key]
            if not isinstance(tgt, h5py.Dataset) or tgt.ndim != 3 or tgt.dtype.kind not in "f":
                raise InputError(p, f"'{target_key}' must be a real float (slices, h, w) dataset")
            if tgt.shape[0] != num_slices:
                raise InputError(p, f"'{target_key}' has {tgt.shape[0]} slices but k-space has {num_slices}")
            target_shape = (int(tgt.shape[1]), int(tgt.shape[2]))

        mask = None
        if _has(hf, "mask"):
            try:
                raw_mask = np.asarray(hf["mask"])
            except (OSError, TypeError, ValueError) as exc:
                raise InputError(p, f"cannot read mask ({exc})") from None
            mask = parse_mask(raw_mask, encoded, p)

        recon, fov = _header_sizes(p, hf, encoded, target_shape)
        attrs = sanitise_attrs(hf.attrs)

    acq = attrs.get("acquisition")
    return ScanInfo(
        path=p,
        num_slices=num_slices,
        multicoil=multicoil,
        kspace_shape=slice_shape,
        encoded_size=encoded,
        recon_size=recon,
        mask=mask,
        target_key=target_key,
        attrs=attrs,
        acquisition=str(acq) if acq is not None else None,
        fov_mm=fov,
        target_shape=target_shape,
    )


def read_slice(info: ScanInfo, index: int, with_sens: bool = False) -> SliceData:
    """Read one slice (k-space, target, mask) of a scan opened with :func:`open_scan`.

    Args:
        info: The scan.
        index: Slice index in ``[0, num_slices)``; negative indices count from the end.
        with_sens: also read the slice's stored coil maps (``sens_maps``, written by ``data_prep``), if any.

    Returns:
        The slice; k-space is complex64 ``(C, H, W)`` or ``(H, W)``, the target float32 ``(h, w)``.

    Raises:
        IndexError: If ``index`` is out of range.
        InputError: If the slice has NaN/Inf or all-zero k-space, or the file cannot be read.

    """
    if not -info.num_slices <= index < info.num_slices:
        raise IndexError(f"slice {index} out of range for {info.num_slices} slices in {info.path}")
    index = index % info.num_slices
    p = info.path
    with _damaged_as_input_error(p), _open(p) as hf:
        kspace = _read(p, _kspace_layout(p, hf), index).astype(np.complex64, copy=False)
        target = None
        if info.target_key is not None:
            tgt = stored_dataset(p, hf, info.target_key)
            if not isinstance(tgt, h5py.Dataset):
                raise InputError(p, f"'{info.target_key}' changed since the file was opened")
            target = _read(p, tgt, index).astype(np.float32, copy=False)
        sens = None
        if with_sens and isinstance(hf.get("sens_maps"), h5py.Dataset):
            sens = np.asarray(hf["sens_maps"][index])
    if kspace.shape != info.kspace_shape:
        raise InputError(p, f"k-space slice shape {kspace.shape} changed since the file was opened")
    _check_slice(p, kspace, index)
    if target is not None and not np.all(np.isfinite(target)):
        raise InputError(p, f"target slice {index} contains NaN or Inf")
    mask = None if info.mask is None else info.mask.copy()
    return SliceData(kspace=kspace, target=target, mask=mask, index=index, sens=sens)

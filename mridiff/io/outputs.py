"""Result files: fastMRI submission HDF5, NIfTI geometry for fastMRI scans, and metrics JSON.

No field of the input (attrs, header text) is copied into an output: only the arrays mridiff computed and a
few parameters it chose, so no patient identifier can travel from a scan into a result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mridiff.io.atomic import atomic_path, atomic_write_text


def write_submission_h5(path: str | os.PathLike[str], reconstruction: np.ndarray, overwrite: bool = False,
                        extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write fastMRI's submission layout: one file per input with a ``reconstruction`` dataset (S, h, w).

    Args:
        path: output ``.h5`` (same file name as the input, as ``fastmri/evaluate.py`` expects).
        reconstruction: float32 magnitude volume (S, h, w), centre-cropped to the recon size.
        overwrite: replace an existing file.
        extra: further float datasets (e.g. ``uncertainty``), stored beside ``reconstruction``.

    """
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as fh:
            fh.create_dataset("reconstruction", data=np.asarray(reconstruction, dtype=np.float32))
            for name, arr in (extra or {}).items():
                fh.create_dataset(name, data=np.asarray(arr, dtype=np.float32))
            fh.attrs["software"] = "mridiff"
    return Path(path)


def fastmri_affine(fov_mm: tuple[float, float, float] | None, recon_size: tuple[int, int],
                   num_slices: int = 1) -> np.ndarray:
    """The NIfTI affine of a fastMRI reconstruction (S, h, w) stored as volume (w, h, S), in mm.

    fastMRI HDF5 carries no patient position, so the orientation is nominal but follows the layout of the images
    (fastMRI's brain data and ``data_prep.nifti_to_fastmri``, which shows a slice with the higher world coordinate
    at the top and the first in-plane axis along the columns): image row 0 is the top of the picture (anterior for
    axial slices), so the voxel axis along the rows points to posterior, and the columns run towards patient right.
    Axis codes: ``('R', 'P', 'S')``. In nibabel, ITK-SNAP and 3D Slicer the slice then shows the right way up, as in
    the PNG and the source volume. The volume is centred on the world origin. Voxel sizes come from the header's
    reconSpace field of view (x, y in-plane; z is the slice thickness); without a usable header they are 1 mm.

    Args:
        fov_mm: Field of view (x, y, z) in mm from the ISMRMRD header, or ``None``.
        recon_size: (h, w) of the reconstruction.
        num_slices: S, to centre the volume along the slice axis.

    Returns:
        float64 (4, 4) voxel-to-world (RAS+, mm) matrix.

    """
    h, w = recon_size
    if fov_mm is None or not all(np.isfinite(fov_mm)) or min(fov_mm) <= 0:
        dx = dy = dz = 1.0
    else:
        dx, dy, dz = fov_mm[0] / w, fov_mm[1] / h, fov_mm[2]
    affine = np.diag([dx, -dy, dz, 1.0])
    affine[:3, 3] = [-dx * (w - 1) / 2, dy * (h - 1) / 2, -dz * (num_slices - 1) / 2]
    return affine


def volume_to_nifti_array(volume: np.ndarray) -> np.ndarray:
    """(S, h, w) slices -> (w, h, S) voxel array matching :func:`fastmri_affine`."""
    return np.ascontiguousarray(np.transpose(volume, (2, 1, 0)))


def write_json(path: str | os.PathLike[str], data: Any, overwrite: bool = True) -> Path:
    """Write JSON atomically (sorted keys, NaN written as null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        if isinstance(obj, float | np.floating):
            return None if not np.isfinite(obj) else float(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        return obj

    return atomic_write_text(path, json.dumps(clean(data), indent=2, sort_keys=True) + "\n", overwrite)

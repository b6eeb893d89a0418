"""Turn a NIfTI magnitude volume into a fastMRI-layout HDF5 file with simulated k-space.

Usage::

    mridiff prepare nifti IN.nii.gz OUT_DIR --coils 8 --axis 2 --size 128 \
        [--seed 0] [--snr-db 30] [--slices-range a:b] [--min-foreground 0.1] [--volume N] [--overwrite]

The volume is reoriented to RAS+, sliced along ``--axis`` and each slice is shown in display orientation (the
higher world coordinate at the top, the first in-plane axis along the columns, so axial slices have anterior up and
left-right phase encoding as in fastMRI brain data). Slices are zero-padded to a square field of view and resampled
to ``size x size`` (square targets, so fastmri/evaluate.py's (W, W) crop applies). Near-empty slices are skipped.
Writes ``OUT_DIR/<input stem>.h5``; see :mod:`mridiff.data.h5_writer` for the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.transform import resize

from mridiff.data.h5_writer import SimulationSpec, write_simulated_scan
from mridiff.data.nifti import NiftiVolume, read_nifti, slice_volume
from mridiff.errors import InputError
from mridiff.io.atomic import check_writable

FOREGROUND_LEVEL = 0.05  # a pixel is foreground above 5% of the volume's robust maximum


@dataclass(frozen=True)
class PreparedSlices:
    """All slices of a volume along one axis, square, resampled and normalised.

    Attributes:
        images: float32 ``(N, size, size)``, non-negative, divided by ``intensity_scale``.
        pixel_mm: In-plane pixel size after resampling (same on both axes).
        thickness_mm: Voxel size along the slicing axis.
        intensity_scale: 99.9th percentile of the positive source voxels.
    """

    images: np.ndarray
    pixel_mm: float
    thickness_mm: float
    intensity_scale: float

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view ``(rows, cols, thickness)`` of one slice in mm."""
        side = self.pixel_mm * self.images.shape[-1]
        return side, side, self.thickness_mm


def input_stem(path: Path) -> str:
    """Return the file name without ``.nii``, ``.nii.gz`` or another extension."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def prepare_slices(vol: NiftiVolume, axis: int, size: int) -> PreparedSlices:
    """Slice a volume along ``axis`` and resample each slice to a centred square ``size x size`` grid.

    Args:
        vol: The volume (ideally RAS+, as ``read_nifti(..., canonical=True)`` returns).
        axis: Slicing axis 0, 1 or 2.
        size: Output side length in pixels.

    Returns:
        The prepared slices.
    """
    data = np.clip(vol.data, 0.0, None)
    positive = data[data > 0]
    scale = float(np.percentile(positive, 99.9)) if positive.size else 1.0
    in_plane = [a for a in range(3) if a != axis]
    col_axis, row_axis = in_plane
    slices = slice_volume(data, axis)  # (N, a, b): a = col_axis, b = row_axis
    # Display orientation: rows run along row_axis from high to low world coordinate, columns along col_axis.
    oriented = np.flip(np.swapaxes(slices, 1, 2), axis=1)
    d_row, d_col = vol.zooms[row_axis], vol.zooms[col_axis]
    rows, cols = oriented.shape[1:]
    side_mm = max(rows * d_row, cols * d_col)
    pad_rows = max(int(round(side_mm / d_row)), rows)
    pad_cols = max(int(round(side_mm / d_col)), cols)
    padded = np.zeros((oriented.shape[0], pad_rows, pad_cols), dtype=np.float32)
    r0, c0 = (pad_rows - rows) // 2, (pad_cols - cols) // 2
    padded[:, r0 : r0 + rows, c0 : c0 + cols] = oriented / scale
    out = resize(padded, (padded.shape[0], size, size), order=1, anti_aliasing=True, preserve_range=True)
    images = np.clip(out, 0.0, None).astype(np.float32)
    return PreparedSlices(
        images=images,
        pixel_mm=float(pad_cols * d_col / size),
        thickness_mm=float(vol.zooms[axis]),
        intensity_scale=scale,
    )


def parse_range(text: str | None) -> tuple[int | None, int | None] | None:
    """Parse ``"a:b"`` (either side optional) into a Python slice's bounds; ``None`` stays ``None``."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise InputError(None, f"--slices-range must look like a:b, got {text!r}")
    try:
        lo, hi = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise InputError(None, f"--slices-range must hold integers, got {text!r}") from None
    return lo, hi


def select_slices(
    images: np.ndarray, slices_range: tuple[int | None, int | None] | None, min_foreground: float
) -> np.ndarray:
    """Indices of the slices inside ``slices_range`` whose foreground fraction is at least ``min_foreground``."""
    idx = np.arange(images.shape[0])
    if slices_range is not None:
        idx = idx[slice(slices_range[0], slices_range[1])]
    if idx.size == 0:
        return idx
    fraction = (images[idx] > FOREGROUND_LEVEL).mean(axis=(1, 2))
    return idx[fraction >= min_foreground]


def convert(
    in_path: str | Path,
    out_dir: str | Path,
    spec: SimulationSpec,
    *,
    axis: int = 2,
    size: int = 128,
    slices_range: tuple[int | None, int | None] | None = None,
    min_foreground: float = 0.1,
    volume_index: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert one NIfTI volume into ``out_dir/<stem>.h5``.

    Args:
        in_path: The input volume.
        out_dir: Output directory (created if needed).
        spec: Simulation settings (coils, seed, SNR, acquisition name).
        axis: Slicing axis of the RAS+ volume (2 = axial).
        size: Square output size in pixels.
        slices_range: Optional ``(start, stop)`` bounds on the slice index before the foreground filter.
        min_foreground: Minimum fraction of foreground pixels a slice needs to be kept.
        volume_index: Volume of a 4D input.
        overwrite: Replace an existing output.

    Returns:
        The written file.

    Raises:
        InputError: On a bad input volume, bad options, no slice left, or an existing output without ``overwrite``.
    """
    src = Path(in_path)
    if size < 8:
        raise InputError(None, f"--size must be at least 8, got {size}")
    if spec.coils < 0:
        raise InputError(None, f"--coils must be 0 or more, got {spec.coils}")
    if not 0.0 <= min_foreground <= 1.0:
        raise InputError(None, f"--min-foreground must be in [0, 1], got {min_foreground}")
    stem = input_stem(src)
    out = check_writable(Path(out_dir) / f"{stem}.h5", overwrite)
    vol = read_nifti(src, volume_index=volume_index, canonical=True)
    prepared = prepare_slices(vol, axis, size)
    keep = select_slices(prepared.images, slices_range, min_foreground)
    if keep.size == 0:
        raise InputError(src, f"no slice along axis {axis} has {min_foreground:.0%} foreground in the chosen range")
    return write_simulated_scan(
        out,
        prepared.images[keep],
        keep,
        spec,
        fov_mm=prepared.fov_mm,
        source_volume=stem,
        intensity_scale=prepared.intensity_scale,
        overwrite=overwrite,
    )

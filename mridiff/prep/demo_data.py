"""Build the inputs bundled with the package: the demo's real test slices, and the Colin27 slices.

    mridiff prepare demo-data mridiff/data/demo_cheng.npz                     # the input of `mridiff demo`
    mridiff prepare demo-data mridiff/data/demo_colin27.npz --from colin27    # the tutorial's and golden test's

``demo_cheng.npz``: four slices of the Cheng brain-tumour set's **test** folder (``meningioma/``, never trained on),
at 7/8, 1/8, 3/8 and 5/8 of the folder in numeric order (two sagittal, an axial and a coronal slice, each with its
tumour), prepared exactly as ``mridiff prepare cheng`` prepares them (:func:`mridiff.prep.cheng.load_slice`: 2x2
area averaging of the 512x512 JPEG to 256x256, values 0-255) and stored as float16, which holds these quarter-step
values exactly. ``mridiff demo`` simulates k-space from them at run time, as ``prepare cheng`` does for its test
files (same seed per slice number, coils, noise and acquisition attribute). CC BY 4.0: the file carries the
attribution (``licence``) and ``mridiff demo`` prints it.

``demo_colin27.npz``: three Colin27 slices (the template set's test subject) prepared as ``make_default_dataset``
prepares its test volume (RAS+, axial, 128x128, intensities / 99.9th percentile), float16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mridiff.data.nifti import read_nifti
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path
from mridiff.prep import cheng
from mridiff.prep.default_dataset import AXIS, MIN_FOREGROUND
from mridiff.prep.nifti_to_fastmri import prepare_slices, select_slices
from mridiff.prep.templates import colin27, sha256_file

SIZE = 128
FRACTIONS = (0.4, 0.55, 0.7)  # positions within the foreground slices: mid-brain, where anatomy is richest
CHENG_SIZE = 256
# Positions within the test folder (numeric order). The 7/8 slice is stored first: the figures of `reconstruct` show
# the middle half of a stack, here slices 1-3, which are then an axial, a coronal and a sagittal slice.
CHENG_FRACTIONS = (0.875, 0.125, 0.375, 0.625)
CHENG_LABEL = "real clinical images (test split), simulated k-space"


def build_demo_data(out: Path, overwrite: bool = False) -> list[int]:
    """Write the Colin27 slices (three, float16) to ``out``; return the source slice indices.

    Raises:
        InputError: if Colin27 is not found, or ``out`` exists without ``overwrite``.
    """
    src = colin27()
    if src is None:
        raise InputError(None, "Colin27 volume not found", "set MRIDIFF_SHARED")
    vol = read_nifti(src, canonical=True)
    prepared = prepare_slices(vol, AXIS, SIZE)
    keep = select_slices(prepared.images, None, MIN_FOREGROUND)
    picks = keep[[int(f * (len(keep) - 1)) for f in FRACTIONS]]
    with atomic_path(out, overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            images=prepared.images[picks].astype(np.float16),
            source_indices=picks.astype(np.int32),
            pixel_mm=np.float32(prepared.pixel_mm),
            thickness_mm=np.float32(prepared.thickness_mm),
            source=np.str_(f"Colin27 T1 ({src.name}, sha256 {sha256_file(src)[:16]}), axial slices "
                           f"{picks.tolist()} of the RAS+ volume; test subject, never trained on"),
        )
    return [int(i) for i in picks]


def build_cheng_demo_data(out: Path, source: Path | None = None, overwrite: bool = False) -> list[str]:
    """Write the demo's four real test slices (float16, 256x256, values 0-255) to ``out``; return their names.

    Args:
        out: The ``.npz`` to write.
        source: The ``cheng_brain_tumor`` folder (default: the shared data directory's).
        overwrite: Replace an existing file.

    Raises:
        InputError: if the source folder or a picked slice is missing or unreadable, or ``out`` exists without
            ``overwrite``.
    """
    src = source or cheng.default_source()
    if not src.is_dir():
        raise InputError(src, "source folder not found", "pass --source DIR or set MRIDIFF_SHARED")
    test = cheng.make_split(src).test
    picks = [test[int(f * (len(test) - 1))] for f in CHENG_FRACTIONS]
    images = []
    for name in picks:
        try:
            images.append(cheng.load_slice(src / name, CHENG_SIZE))
        except ValueError as exc:
            raise InputError(src / name, str(exc)) from None
    boxes = [cheng.read_box(src / name.replace(".jpg", ".txt"), CHENG_SIZE) or [0, 0, 0, 0] for name in picks]
    stacked = np.stack(images)
    if not np.array_equal(stacked.astype(np.float16).astype(np.float32), stacked):  # quarter steps of 0-255
        raise InputError(src, "prepared slices are not exactly representable in float16")
    with atomic_path(out, overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            images=stacked.astype(np.float16),
            names=np.array(picks),
            source_indices=np.array([int(Path(n).stem) for n in picks], dtype=np.int32),
            boxes=np.array(boxes, dtype=np.int32),
            intensity_scale=np.float32(255.0),
            fov_mm=np.array(cheng.fov_mm(CHENG_SIZE), dtype=np.float32),
            acquisition=np.str_(cheng.ACQUISITION),
            label=np.str_(CHENG_LABEL),
            source=np.str_(f"Cheng brain-tumour set, test folder meningioma/ (never trained on): {', '.join(picks)}; "
                           f"sha256 of the JPEGs {cheng.sha256_listing(src, picks)[:16]}"),
            licence=np.str_(cheng.LICENCE),
        )
    return picks

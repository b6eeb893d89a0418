"""Build the demo input bundled with the package: a few Colin27 slices prepared like the default test set.

    mridiff prepare demo-data mridiff/data/demo_colin27.npz

Colin27 is the held-out test subject (never trained on); the slices are prepared exactly as
``make_default_dataset`` prepares its test volume (RAS+, axial, 128x128, intensities / 99.9th percentile) and
stored as float16 magnitude images. ``mridiff demo`` simulates k-space from them at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mridiff.data.nifti import read_nifti
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path
from mridiff.prep.default_dataset import AXIS, MIN_FOREGROUND
from mridiff.prep.nifti_to_fastmri import prepare_slices, select_slices
from mridiff.prep.templates import colin27, sha256_file

SIZE = 128
FRACTIONS = (0.4, 0.55, 0.7)  # positions within the foreground slices: mid-brain, where anatomy is richest




def build_demo_data(out: Path, overwrite: bool = False) -> list[int]:
    """Write the bundled demo input (three Colin27 slices, float16) to ``out``; return the source slice indices.

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

"""Build mridiff's default dataset from volumes that need no data download.

Usage::

    mridiff prepare default-dataset OUT_DIR [--size 128] [--coils 8] [--snr-db 30] [--seed 0]
        [--nimare-wheel PATH | --download-nimare] [--overwrite]

Train = MNI152 templates (population averages); test = Colin27 (one subject, never trained on). Validation = a
contiguous slab of axial slices held back from the middle of each training template, with a gap of
``VAL_GAP`` slices on each side: it shares anatomy with training (the same average brain), so it is for model
selection only, never for reported numbers.

Layout (each directory directly usable as ``fastmri.data.SliceDataset(root, challenge)``)::

    OUT_DIR/singlecoil_{train,val,test}/*.h5     kspace (S, H, W) + reconstruction_esc
    OUT_DIR/multicoil_{train,val,test}/*.h5      kspace (S, C, H, W) + reconstruction_rss + sens_maps
    OUT_DIR/splits/{train,val,test}.txt          file names (the same in both variants)
    OUT_DIR/provenance.json                      sources, checksums, licences, simulation settings
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mridiff.data.h5_writer import SimulationSpec, write_simulated_scan
from mridiff.data.nifti import read_nifti
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_write_text, check_writable
from mridiff.prep.nifti_to_fastmri import prepare_slices, select_slices
from mridiff.prep.templates import Template, sha256_file

VAL_FRACTION = 0.1
VAL_GAP = 4
AXIS = 2
MIN_FOREGROUND = 0.1
SPLITS = ("train", "val", "test")


def split_train_val(indices: np.ndarray, fraction: float = VAL_FRACTION, gap: int = VAL_GAP) -> dict[str, np.ndarray]:
    """Hold back a central slab of ``indices`` for validation, dropping ``gap`` slices on each side of it.

    Args:
        indices: Sorted slice indices kept for a training volume.
        fraction: Fraction of them in the validation slab (at least one slice).
        gap: Slices dropped between the slab and the training slices, to limit their correlation.

    Returns:
        ``{"train": ..., "val": ...}`` index arrays (disjoint; the gap slices are in neither).
    """
    n = len(indices)
    n_val = max(1, int(round(fraction * n)))
    start = (n - n_val) // 2
    val = indices[start : start + n_val]
    train = np.concatenate([indices[: max(start - gap, 0)], indices[start + n_val + gap :]])
    return {"train": train, "val": val}


def build(
    out_dir: str | Path,
    templates: Sequence[Template],
    *,
    size: int = 128,
    coils: int = 8,
    snr_db: float | None = 30.0,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the dataset for the given sources and return its provenance record.

    Args:
        out_dir: Output root.
        templates: Sources; ``role == "train"`` ones are split into train/val slabs, ``"test"`` ones go to test.
        size: Square slice size in pixels.
        coils: Coils of the multi-coil variant (> 1).
        snr_db: k-space SNR in dB, or ``None`` for noiseless data.
        seed: Simulation seed.
        overwrite: Replace existing files.

    Returns:
        The provenance record (also written to ``provenance.json``).
    """
    if coils < 2:
        raise InputError(None, f"--coils must be at least 2 for the multi-coil variant, got {coils}")
    root = Path(out_dir)
    variants = {"singlecoil": 1, "multicoil": coils}
    plan: list[tuple[Template, str, str]] = []  # (template, split, file name)
    for tpl in templates:
        if tpl.role == "train":
            plan += [(tpl, "train", f"{tpl.key}.h5"), (tpl, "val", f"{tpl.key}_val.h5")]
        else:
            plan.append((tpl, "test", f"{tpl.key}.h5"))
    outputs = [root / f"{v}_{split}" / name for v in variants for _, split, name in plan]
    outputs += [root / "splits" / f"{s}.txt" for s in SPLITS] + [root / "provenance.json"]
    for path in outputs:  # fail before any work if something would be clobbered
        check_writable(path, overwrite)

    sources: list[dict[str, Any]] = []
    record: dict[str, Any] = {
        "description": "mridiff default dataset: simulated k-space from MRI magnitude volumes",
        "simulated": True,
        "size": size,
        "axis": AXIS,
        "min_foreground": MIN_FOREGROUND,
        "validation": f"central {VAL_FRACTION:.0%} slab of each training template, {VAL_GAP}-slice gaps",
        "sources": sources,
    }
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    for tpl in templates:
        vol = read_nifti(tpl.path, canonical=True)
        prepared = prepare_slices(vol, AXIS, size)
        keep = select_slices(prepared.images, None, MIN_FOREGROUND)
        if keep.size == 0:
            raise InputError(tpl.path, "no slice with enough foreground")
        parts = split_train_val(keep) if tpl.role == "train" else {"test": keep}
        entry: dict[str, Any] = {
            "key": tpl.key,
            "role": tpl.role,
            "file": tpl.path.name,
            "sha256": sha256_file(tpl.path),
            "description": tpl.description,
            "source": tpl.source,
            "licence": tpl.licence,
            "shape": list(vol.data.shape),
            "zooms_mm": list(vol.zooms),
            "slices": {k: [int(i) for i in v] for k, v in parts.items()},
            "simulation": SimulationSpec(coils=coils, seed=seed, snr_db=snr_db).describe(),
        }
        for split, idx in parts.items():
            name = f"{tpl.key}_val.h5" if split == "val" else f"{tpl.key}.h5"
            lists[split].append(name)
            for variant, n_coils in variants.items():
                spec = SimulationSpec(coils=n_coils, seed=seed, snr_db=snr_db, acquisition="AXT1")
                write_simulated_scan(
                    root / f"{variant}_{split}" / name,
                    prepared.images[idx],
                    idx,
                    spec,
                    fov_mm=prepared.fov_mm,
                    source_volume=tpl.key,
                    intensity_scale=prepared.intensity_scale,
                    overwrite=overwrite,
                )
        sources.append(entry)
    for split in SPLITS:
        atomic_write_text(root / "splits" / f"{split}.txt", "".join(f"{n}\n" for n in sorted(lists[split])), overwrite)
    atomic_write_text(root / "provenance.json", json.dumps(record, indent=2) + "\n", overwrite)
    return record

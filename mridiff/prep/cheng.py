"""Prepare the Cheng brain-tumour set (real clinical T1 CE slices, JPEG) for training and evaluation.

Usage::

    mridiff prepare cheng OUT_DIR [--source DIR] [--size 256] [--coils 8] [--snr-db 30] [--seed 0] [--limit N]
        [--overwrite]                     (or: python -m data_prep.cheng ... inside the checkout)

``--source`` defaults to ``cheng_brain_tumor/`` in the shared data directory (``$MRIDIFF_SHARED/data``, else
``../shared/data`` beside the checkout; see :func:`mridiff.prep.templates.shared_data_dir`).

Split (``../shared/data/README.md``): test = every slice of ``meningioma/`` (never trained on, never used to choose
anything); validation = the highest-numbered 10 % of ``glioma/`` and of ``pituitary/`` (consecutive numbers are
usually one patient, so a contiguous block approximates a patient split); train = the rest.

Resizing 512 -> 256: the mean of each 2x2 block (area resampling). It is the exact anti-aliased factor-2
reduction, adds no ringing at the JPEG block edges (a k-space crop would), and keeps intensities linear. Another
input size is resized with scikit-image's anti-aliased linear resize to ``size x size`` and noted in provenance.

Layout::

    OUT_DIR/train_images.h5                      images uint16 (N, size, size): 2x2 sums of 8-bit pixels (0..1020),
                                                 names (N,); k-space is simulated on the fly in training
    OUT_DIR/singlecoil_{val,test}/<tumour>_<number>.h5   fastMRI layout, one slice, kspace + reconstruction_esc
    OUT_DIR/multicoil_{val,test}/<tumour>_<number>.h5    fastMRI layout, 8 coils, kspace + reconstruction_rss
    OUT_DIR/splits/{train,val,test}.txt          source names (``glioma/1841.jpg``), one per line
    OUT_DIR/boxes.json                           tumour boxes in output pixels, {name: [row0, col0, row1, col1]}
    OUT_DIR/provenance.json                      source, licence, attribution, split rule, checksums, simulation

Every val/test file also carries its tumour box as the attribute ``tumor_box`` (row0, col0, row1, col1; output
pixels, end-exclusive). A JPEG that fails to decode is skipped with a warning naming it, and listed in provenance.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError
from skimage.transform import resize
from tqdm import tqdm

from mridiff.data.h5_writer import SimulationSpec, write_simulated_scan
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path, atomic_write_text, check_writable
from mridiff.prep.templates import shared_data_dir

TUMOURS = ("glioma", "meningioma", "pituitary")
TEST_FOLDERS = ("meningioma",)
VAL_FRACTION = 0.1
PIXEL_MM_512 = 0.49  # in-plane pixel of the original 512x512 release
SLICE_MM = 6.0
SOURCE_NAME = "cheng_brain_tumor"
ACQUISITION = "AXT1POST"  # the acquisition attribute of the prepared files (T1 after contrast; orientations mixed)
LABEL = "real clinical images, simulated k-space"
LICENCE = (
    "CC BY 4.0. Cheng, Jun (2017), 'brain tumor dataset', figshare, doi:10.6084/m9.figshare.1512427; "
    "Cheng et al., 'Enhanced Performance of Brain Tumor Classification via Tumor Region Augmentation and "
    "Partition', PLoS ONE 10(10):e0140381, 2015."
)


@dataclass(frozen=True)
class Split:
    """File names per split, each ``<tumour>/<number>.jpg`` relative to the source folder."""

    train: list[str]
    val: list[str]
    test: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        """``{"train": [...], "val": [...], "test": [...]}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


def default_source() -> Path:
    """``cheng_brain_tumor/`` in the shared data directory (``$MRIDIFF_SHARED``, else beside the checkout)."""
    return shared_data_dir() / SOURCE_NAME


def numbered_jpegs(folder: Path) -> list[str]:
    """``<folder name>/<n>.jpg`` for every numbered JPEG in ``folder``, in numeric order."""
    stems = sorted((p for p in folder.glob("*.jpg") if p.stem.isdigit()), key=lambda p: int(p.stem))
    return [f"{folder.name}/{p.name}" for p in stems]


def make_split(source: Path, val_fraction: float = VAL_FRACTION) -> Split:
    """The fixed split of the data README: test = meningioma, val = top 10 % by number of the other folders.

    Raises:
        InputError: if a tumour folder is missing or empty.
    """
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    for tumour in TUMOURS:
        names = numbered_jpegs(source / tumour)
        if not names:
            raise InputError(source / tumour, "no numbered JPEG slices found")
        if tumour in TEST_FOLDERS:
            test += names
            continue
        n_val = max(1, int(round(val_fraction * len(names))))
        train += names[:-n_val]
        val += names[-n_val:]
    return Split(train=train, val=val, test=test)


def load_slice(path: Path, size: int) -> np.ndarray:
    """Decode an 8-bit greyscale JPEG and reduce it to ``size x size`` float32 in [0, 255].

    Raises:
        ValueError: if the file cannot be decoded as an image.
    """
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image ({exc})") from None
    h, w = arr.shape
    if h == w == 2 * size:
        return arr.reshape(size, 2, size, 2).mean(axis=(1, 3))
    return resize(arr, (size, size), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def fov_mm(size: int) -> tuple[float, float, float]:
    """Field of view ``(rows, cols, thickness)`` in mm of a slice prepared at ``size x size``."""
    pixel_mm = PIXEL_MM_512 * 512 / size
    return (pixel_mm * size, pixel_mm * size, SLICE_MM)


def read_box(txt: Path, size: int) -> list[int] | None:
    """Tumour box ``[row0, col0, row1, col1]`` (end-exclusive) in ``size`` pixels, from a YOLO-style label file."""
    try:
        fields = txt.read_text().split()
        _, xc, yc, bw, bh = (float(v) for v in fields[:5])
    except (OSError, ValueError):
        return None
    row0 = int(np.floor((yc - bh / 2) * size))
    row1 = int(np.ceil((yc + bh / 2) * size))
    col0 = int(np.floor((xc - bw / 2) * size))
    col1 = int(np.ceil((xc + bw / 2) * size))
    row0, col0 = max(row0, 0), max(col0, 0)
    row1, col1 = min(row1, size), min(col1, size)
    return [row0, col0, row1, col1] if row1 > row0 and col1 > col0 else None


def out_name(name: str) -> str:
    """``glioma/1841.jpg`` -> ``glioma_1841.h5``."""
    folder, file = name.split("/")
    return f"{folder}_{Path(file).stem}.h5"


def write_train_images(out: Path, source: Path, names: list[str], size: int, overwrite: bool) -> list[str]:
    """Write the training slices as exact 2x2 sums (uint16) with their names; return names that failed."""
    failed: list[str] = []
    kept: list[str] = []
    images: list[np.ndarray] = []
    for name in tqdm(names, desc="train images", unit="slice"):
        try:
            img = load_slice(source / name, size)
        except ValueError as exc:
            warnings.warn(f"{source / name}: {exc}; skipped", stacklevel=1)
            failed.append(name)
            continue
        images.append(np.clip(np.rint(img * 4.0), 0, 1020).astype(np.uint16))
        kept.append(name)
    with atomic_path(out, overwrite) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("images", data=np.stack(images), chunks=(1, size, size), compression="gzip",
                          compression_opts=1)
        hf.create_dataset("names", data=np.array(kept, dtype="S"))
        hf.attrs["scale"] = 1020.0
        hf.attrs["note"] = "real clinical T1 CE magnitude slices (JPEG), area-resampled; divide by `scale` for [0, 1]"
        hf.attrs["pixel_mm"] = PIXEL_MM_512 * 512 / size
    return failed


def write_eval_files(out_dir: Path, source: Path, names: list[str], split: str, size: int, coils: int,
                     snr_db: float | None, seed: int, boxes: dict[str, list[int]], overwrite: bool) -> list[str]:
    """Write single- and multi-coil fastMRI-layout files for ``names``; return names that failed to decode."""
    failed: list[str] = []
    fov = fov_mm(size)
    for name in tqdm(names, desc=f"{split} files", unit="slice"):
        try:
            img = load_slice(source / name, size) / 255.0
        except ValueError as exc:
            warnings.warn(f"{source / name}: {exc}; skipped", stacklevel=1)
            failed.append(name)
            continue
        number = int(Path(name).stem)
        for variant, n_coils in (("singlecoil", 1), ("multicoil", coils)):
            spec = SimulationSpec(coils=n_coils, seed=seed, snr_db=snr_db, acquisition=ACQUISITION)
            path = out_dir / f"{variant}_{split}" / out_name(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_simulated_scan(path, img[None], np.array([number]), spec, fov_mm=fov,
                                 source_volume=out_name(name)[:-3], intensity_scale=255.0, overwrite=overwrite)
            if name in boxes:
                with h5py.File(path, "a") as hf:
                    hf.attrs["tumor_box"] = np.asarray(boxes[name], dtype=np.int32)
    return failed


def sha256_listing(source: Path, names: list[str]) -> str:
    """SHA-256 over the names and bytes of the source files, in order (identifies the exact input)."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update((source / name).read_bytes())
    return h.hexdigest()


def prepare(source: Path, out_dir: Path, size: int = 256, coils: int = 8, snr_db: float | None = 30.0,
            seed: int = 0, limit: int | None = None, overwrite: bool = False) -> dict[str, object]:
    """Write the whole prepared set; see the module docstring for the layout. Returns the provenance record."""
    if not source.is_dir():
        raise InputError(source, "source folder not found", "pass --source DIR or set MRIDIFF_SHARED")
    check_writable(out_dir / "provenance.json", overwrite)
    split = make_split(source)
    if limit is not None:
        split = Split(split.train[:limit], split.val[:limit], split.test[:limit])
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, names in split.as_dict().items():
        atomic_write_text(out_dir / "splits" / f"{key}.txt", "\n".join(names) + "\n", overwrite=True)
    boxes = {}
    for name in split.val + split.test:
        box = read_box(source / name.replace(".jpg", ".txt"), size)
        if box is not None:
            boxes[name] = box
    atomic_write_text(out_dir / "boxes.json", json.dumps(boxes, indent=0, sort_keys=True), overwrite=True)
    failed = write_train_images(out_dir / "train_images.h5", source, split.train, size, overwrite)
    failed += write_eval_files(out_dir, source, split.val, "val", size, coils, snr_db, seed, boxes, overwrite)
    failed += write_eval_files(out_dir, source, split.test, "test", size, coils, snr_db, seed, boxes, overwrite)
    record: dict[str, object] = {
        "source": "cheng_brain_tumor (real clinical T1 contrast-enhanced slices, 233 patients, 8-bit JPEG)",
        "licence": LICENCE,
        "split_rule": "test = meningioma/ (all); val = highest-numbered 10 % of glioma/ and pituitary/; train = rest",
        "counts": {k: len(v) for k, v in split.as_dict().items()},
        "failed_to_decode": failed,
        "resize": f"512 -> {size}: mean of 2x2 blocks (area); other sizes: anti-aliased linear resize",
        "pixel_mm": PIXEL_MM_512 * 512 / size,
        "simulation": SimulationSpec(coils=coils, seed=seed, snr_db=snr_db).describe(),
        "label": LABEL,
        "sha256": {k: sha256_listing(source, v) for k, v in split.as_dict().items()},
        "boxes": "boxes.json and the attribute tumor_box: [row0, col0, row1, col1], end-exclusive, output pixels",
    }
    atomic_write_text(out_dir / "provenance.json", json.dumps(record, indent=2), overwrite=True)
    return record

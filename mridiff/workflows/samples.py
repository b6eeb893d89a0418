"""The files of an augmentation directory: sample names and formats, writers and readers, the manifest.

``DIR/samples/sample_000012.nii.gz`` (or ``.h5``, ``.png``) holds sample 12; ``DIR/manifest.csv`` lists the
finished samples with their seeds, the model's SHA-256, the steps and how the file was made. A manifest row is
written only after its sample file is in place, so a listed sample is complete.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np
from PIL import Image

from mridiff.data.fastmri_h5 import stored_dataset
from mridiff.data.ismrmrd import build_header
from mridiff.data.nifti import write_nifti
from mridiff.data.simulate import ifft2c_np, simulate_kspace
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_path, atomic_write_text
from mridiff.io.outputs import volume_to_nifti_array
from mridiff.physics.masks import MaskSpec, default_center_fraction, make_mask

FORMATS: dict[str, str] = {"nifti": ".nii.gz", "h5": ".h5", "png": ".png"}
MANIFEST = "manifest.csv"
SAMPLE_DIR = "samples"  # a folder of sample files only: fastmri.data.SliceDataset opens every file in its root
MANIFEST_FIELDS: tuple[str, ...] = ("file", "index", "seed", "checkpoint_sha256", "steps", "mode", "format")
SAMPLER_MODE = "ddim-eta0"
PNG_WHITE = 2.0  # normalised intensity stored as 65535 in 16-bit PNGs (training slices' 99th percentile is 1)
VOXEL_MM = 1.0  # nominal: the model card does not record the training voxel size
_NAME = re.compile(r"^sample_(\d{6})\.(nii\.gz|h5|png)$")


def sample_name(index: int, fmt: str) -> str:
    """Path of sample ``index`` relative to the output directory, e.g. ``samples/sample_000012.nii.gz``."""
    return f"{SAMPLE_DIR}/sample_{index:06d}{FORMATS[fmt]}"


@dataclass
class AugmentOptions:
    """What ``mridiff augment`` writes (CLI flags map one to one).

    Attributes:
        n: target total number of samples in the directory.
        steps: DDIM steps.
        batch: samples per batch (halves on GPU out-of-memory).
        seed: base seed (sample ``i`` uses :func:`sample_seed`).
        fmt: ``nifti``, ``h5`` or ``png``.
        with_kspace: write fastMRI-layout HDF5 with simulated k-space (``fmt`` must be ``h5``).
        coils: simulated coils (1 = single-coil layout).
        acceleration: also store a seeded 1D ``sampling_mask`` at this acceleration, or ``None``.
        snr_db: SNR of the simulated k-space noise.
        progress: show a progress bar.

    """

    n: int
    steps: int = 50
    batch: int = 8
    seed: int = 0
    fmt: str = "nifti"
    with_kspace: bool = False
    coils: int = 8
    acceleration: int | None = None
    snr_db: float = 30.0
    progress: bool = True

    @property
    def mode(self) -> str:
        """How a file is produced (stored in the manifest): sampler, plus the k-space simulation if any."""
        if not self.with_kspace:
            return SAMPLER_MODE
        acc = f"-R{self.acceleration}" if self.acceleration else ""
        return f"{SAMPLER_MODE}+kspace-{self.coils}coil-{self.snr_db:g}dB{acc}"

    def validate(self) -> None:
        """Raise :class:`InputError` for settings that cannot work."""
        if self.n < 1:
            raise InputError(None, f"--n must be at least 1, got {self.n}")
        if self.seed < 0:
            raise InputError(None, f"--seed must be >= 0, got {self.seed}")
        if self.fmt not in FORMATS:
            raise InputError(None, f"unknown format {self.fmt!r}", f"choose one of {', '.join(FORMATS)}")
        if self.with_kspace and self.fmt != "h5":
            raise InputError(None, f"--with-kspace writes fastMRI HDF5, not {self.fmt}", "use --format h5")
        if self.coils < 1:
            raise InputError(None, f"--coils must be at least 1, got {self.coils}")


def write_fastmri_sample(path: Path, image: np.ndarray, opts: AugmentOptions, seed: int) -> None:
    """One fastMRI-layout file (one slice) with k-space simulated from ``image`` (float32 (H, W)).

    Layout as ``data_prep.h5_writer``: ``kspace`` (1, C, H, W) or (1, H, W), ``reconstruction_rss`` /
    ``reconstruction_esc`` (1, H, W), ``sens_maps`` for multi-coil, ``ismrmrd_header``, attrs ``max``/``norm``.
    """
    height, width = image.shape
    sim = simulate_kspace(image, opts.coils, np.random.default_rng(seed), snr_db=opts.snr_db)
    coil_images = ifft2c_np(sim.kspace.astype(np.complex128))
    multicoil = opts.coils > 1
    target = np.sqrt((np.abs(coil_images) ** 2).sum(0)) if multicoil else np.abs(coil_images)
    target = target.astype(np.float32)
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("kspace", data=sim.kspace[None])
        hf.create_dataset("reconstruction_rss" if multicoil else "reconstruction_esc", data=target[None])
        if sim.sens is not None:
            hf.create_dataset("sens_maps", data=sim.sens[None])
        fov = (height * VOXEL_MM, width * VOXEL_MM, VOXEL_MM)
        hf.create_dataset("ismrmrd_header", data=np.bytes_(build_header((height, width), (height, width), fov)))
        if opts.acceleration:
            # Fully sampled k-space (it must train recon models); the seeded mask pairs it with an input.
            mask = make_mask(MaskSpec("random", opts.acceleration), (height, width), seed % 2**31)[0]
            hf.create_dataset("sampling_mask", data=mask.numpy().astype(bool))
            hf.attrs["acceleration"] = opts.acceleration
            hf.attrs["center_fraction"] = default_center_fraction(opts.acceleration)
        hf.attrs.update({"acquisition": "AXT1", "max": float(target.max()), "norm": float(np.linalg.norm(target)),
                         "simulated": True, "synthetic": True, "seed": seed,
                         "simulation": json.dumps({"coils": opts.coils, "snr_db": opts.snr_db,
                                                   "model": "mridiff.data.simulate.simulate_kspace"})})


def write_sample(path: Path, image: np.ndarray, opts: AugmentOptions, seed: int) -> None:
    """Write one sample atomically in ``opts.fmt``; image float32 (H, W) normalised magnitude.

    An existing file is replaced: callers only write samples that are not recorded as finished.
    """
    if opts.with_kspace:
        write_fastmri_sample(path, image, opts, seed)
    elif opts.fmt == "nifti":
        write_nifti(path, volume_to_nifti_array(image[None]), np.diag([VOXEL_MM] * 3 + [1.0]),
                    overwrite=True, descrip="mridiff synthetic sample")
    elif opts.fmt == "png":
        pixels = np.round(np.clip(image / PNG_WHITE, 0.0, 1.0) * 65535).astype(np.uint16)
        with atomic_path(path, overwrite=True) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    else:
        with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as hf:
            hf.create_dataset("image", data=image.astype(np.float32))
            hf.attrs.update({"synthetic": True, "seed": seed})


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest (empty when the file does not exist)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and set(MANIFEST_FIELDS) - set(rows[0]):
        raise InputError(path, "not an mridiff augment manifest", "use a new --out directory")
    return rows


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the manifest atomically, rows sorted by sample index."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: int(r["index"])))
    atomic_write_text(path, buf.getvalue(), overwrite=True)


def read_sample(path: Path) -> np.ndarray:
    """Read a generated sample as float (H, W): NIfTI (stored (W, H, 1)), 8/16-bit PNG or HDF5 (image/target)."""
    try:
        if path.name.endswith((".nii", ".nii.gz")):
            img: Any = nib.load(path)
            data = np.squeeze(np.asarray(img.dataobj, dtype=np.float32))
            if data.ndim != 2:
                raise InputError(path, f"expected a 2D sample, got shape {data.shape}")
            return data.T
        if path.suffix == ".png":
            arr = np.asarray(Image.open(path))
            white = PNG_WHITE / 65535 if arr.dtype == np.uint16 else 1.0 / 255
            return arr.astype(np.float32) * white
        with h5py.File(path, "r") as hf:
            # stored_dataset: never follow external links, external storage or virtual datasets out of the file
            key = next((k for k in ("image", "reconstruction_rss", "reconstruction_esc")
                        if stored_dataset(path, hf, k) is not None), None)
            if key is None:
                raise InputError(path, "no 'image' or reconstruction dataset")
            data = np.asarray(hf[key], dtype=np.float32)
            return data if data.ndim == 2 else data[0]
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise InputError(path, f"cannot read sample ({type(exc).__name__}: {exc})") from None


def list_samples(directory: Path) -> list[Path]:
    """Sample files of an augment directory, sorted by index.

    Taken from its manifest when present, else by name from ``directory/samples`` or ``directory`` itself.
    """
    rows = read_manifest(directory / MANIFEST)
    if rows:
        return [directory / r["file"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    folder = directory / SAMPLE_DIR if (directory / SAMPLE_DIR).is_dir() else directory
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))

"""Memorisation audit: the nearest training slice to each generated sample, by SSIM and by normalised L2.

Every image (sample or training slice) is prepared the same way: resized to ``size x size`` (anti-aliased) and
divided by its 99th magnitude percentile, the normalisation the model was trained with. Training slices are
compared in both left-right orientations, since training flips them at random. A sample is flagged when its
nearest SSIM is at least ``ssim_threshold`` or its nearest normalised L2 distance ``||s - t|| / ||t||`` is at most
``l2_threshold``.

SSIM is skimage's ``structural_similarity`` (7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean
over the valid region), evaluated for one sample against all training slices at once; the data range of a pair
is the larger of the two maxima.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize

from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.data.nifti import read_nifti, slice_volume
from mridiff.data.transforms import normalise_percentile
from mridiff.errors import InputError
from mridiff.io.atomic import atomic_write_text, check_writable
from mridiff.io.figures import panel_png
from mridiff.physics.coils import rss
from mridiff.physics.fft import ifft2c
from mridiff.workflows.samples import list_samples, read_sample

AUDIT_SIZE = 64
# Calibrated on the default dataset at 64 x 64: real slices that are NOT copies reach a nearest SSIM of 0.87 and a
# nearest L2 of 0.13 (Colin27 vs the MNI training slices: SSIM <= 0.868, L2 >= 0.172; held-out MNI slices 4 slices
# from a training slice: SSIM <= 0.862, L2 >= 0.128), while a copy scores SSIM ~1 and L2 ~0.
SSIM_THRESHOLD = 0.95
L2_THRESHOLD = 0.10
SSIM_WINDOW = 7
AUDIT_FIELDS = ("sample", "nearest_ssim", "ssim", "nearest_l2", "l2", "flagged")


def prepare(image: np.ndarray, size: int = AUDIT_SIZE) -> np.ndarray:
    """float32 ``(size, size)``: ``image`` (H, W) resized with anti-aliasing and divided by its 99th percentile."""
    small = resize(np.abs(np.asarray(image, dtype=np.float64)), (size, size), anti_aliasing=True, order=1)
    return normalise_percentile(small, 99.0)[0].astype(np.float32)


def read_image_bank(path: Path) -> tuple[list[str], np.ndarray] | None:
    """Names and float images of an image bank (an HDF5 file with ``images`` and ``names``), or ``None``."""
    try:
        with h5py.File(path, "r") as fh:
            if "images" not in fh or "kspace" in fh:
                return None
            raw = fh["names"][:] if "names" in fh else range(fh["images"].shape[0])
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
            return names, np.asarray(fh["images"], dtype=np.float32)
    except OSError:
        return None


def load_training_slices(paths: Sequence[Path], size: int = AUDIT_SIZE) -> tuple[list[str], np.ndarray]:
    """Load and prepare training slices from fastMRI HDF5 files and NIfTI volumes (axis 2), or directories of them.

    Returns:
        Labels ``"file.h5:slice"`` and float32 ``(M, size, size)``.

    """
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.name.endswith((".h5", ".nii", ".nii.gz")))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(p, "training data not found")
    labels, images = [], []
    for f in files:
        bank = read_image_bank(f) if f.name.endswith(".h5") else None
        if bank is not None:  # an image bank (data_prep.cheng's train_images.h5): magnitude images, no k-space
            labels += [f"{f.name}:{name}" for name in bank[0]]
            images += [prepare(img, size) for img in bank[1]]
        elif f.name.endswith(".h5"):
            info = open_scan(f)
            for i in range(info.num_slices):
                s = read_slice(info, i)
                if s.target is not None:
                    img = s.target
                else:
                    coil = ifft2c(torch.from_numpy(s.kspace))
                    img = (rss(coil, dim=0) if info.multicoil else coil.abs()).numpy()
                labels.append(f"{f.name}:{i}")
                images.append(prepare(img, size))
        else:
            for i, img in enumerate(slice_volume(read_nifti(f).data, 2)):
                labels.append(f"{f.name}:{i}")
                images.append(prepare(img, size))
    if not images:
        raise InputError(paths[0] if paths else None, "no training slices found", "pass .h5 or NIfTI files")
    return labels, np.stack(images)


def ssim_against(x: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """SSIM of one image (H, W) against each of refs (M, H, W), as skimage computes it; returns (M,)."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))[None, None]
    rt = torch.from_numpy(np.asarray(refs, dtype=np.float64))[:, None]
    data_range = torch.clamp(torch.maximum(rt.amax(dim=(1, 2, 3)), xt.max()), min=1e-8).reshape(-1, 1, 1, 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    pool = lambda t: F.avg_pool2d(t, SSIM_WINDOW, stride=1)  # noqa: E731 - the valid region of a uniform filter
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    ux, ur = pool(xt), pool(rt)
    vx = cov_norm * (pool(xt * xt) - ux * ux)
    vr = cov_norm * (pool(rt * rt) - ur * ur)
    vxr = cov_norm * (pool(xt * rt) - ux * ur)
    s = ((2 * ux * ur + c1) * (2 * vxr + c2)) / ((ux**2 + ur**2 + c1) * (vx + vr + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


@dataclass
class AuditRow:
    """The nearest training slices of one sample."""

    sample: str
    nearest_ssim: str
    ssim: float
    nearest_l2: str
    l2: float
    flagged: bool
    ssim_index: int


def audit(samples: np.ndarray, names: Sequence[str], train: np.ndarray, labels: Sequence[str],
          ssim_threshold: float = SSIM_THRESHOLD, l2_threshold: float = L2_THRESHOLD) -> list[AuditRow]:
    """Nearest training slice (both orientations) of each prepared sample.

    Args:
        samples: prepared samples (N, s, s).
        names: sample names (N,).
        train: prepared training slices (M, s, s).
        labels: training slice labels (M,).
        ssim_threshold: flag at SSIM >= this.
        l2_threshold: flag at normalised L2 <= this.

    """
    refs = np.concatenate([train, train[..., ::-1]])
    ref_labels = list(labels) + [f"{lab} (flipped)" for lab in labels]
    ref_flat = refs.reshape(len(refs), -1).astype(np.float64)
    ref_norm = np.maximum(np.linalg.norm(ref_flat, axis=1), 1e-8)
    rows = []
    for name, x in zip(names, samples, strict=True):
        ssims = ssim_against(x, refs)
        l2 = np.linalg.norm(ref_flat - x.reshape(1, -1), axis=1) / ref_norm
        i, j = int(np.argmax(ssims)), int(np.argmin(l2))
        rows.append(AuditRow(name, ref_labels[i], float(ssims[i]), ref_labels[j], float(l2[j]),
                             bool(ssims[i] >= ssim_threshold or l2[j] <= l2_threshold), i))
    return rows


def audit_dir(sample_dir: Path, train_paths: Sequence[Path], out_dir: Path | None = None,
              ssim_threshold: float = SSIM_THRESHOLD, l2_threshold: float = L2_THRESHOLD, size: int = AUDIT_SIZE,
              overwrite: bool = False, pairs: int = 8) -> tuple[list[AuditRow], dict[str, Path]]:
    """Audit the samples in ``sample_dir``; write ``audit.csv`` and ``audit.png`` (closest pairs) to ``out_dir``.

    Raises:
        InputError: missing directories or files, no samples, or existing outputs without ``overwrite``.

    """
    if not sample_dir.is_dir():
        raise InputError(sample_dir, "sample directory not found")
    out = out_dir or sample_dir
    outs = {"csv": out / "audit.csv", "png": out / "audit.png"}
    for p in outs.values():
        check_writable(p, overwrite)
    files = list_samples(sample_dir)
    if not files:
        raise InputError(sample_dir, "no samples found", "expected sample_NNNNNN.{nii.gz,h5,png} or a manifest.csv")
    raw = [read_sample(f) for f in files]
    samples = np.stack([prepare(r, size) for r in raw])
    labels, train = load_training_slices(train_paths, size)
    rows = audit(samples, [f.name for f in files], train, labels, ssim_threshold, l2_threshold)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(AUDIT_FIELDS)
    for r in rows:
        writer.writerow([r.sample, r.nearest_ssim, f"{r.ssim:.4f}", r.nearest_l2, f"{r.l2:.4f}", int(r.flagged)])
    atomic_write_text(outs["csv"], buf.getvalue(), overwrite)
    refs = np.concatenate([train, train[..., ::-1]])
    order = np.argsort([-r.ssim for r in rows])[:pairs]
    zoom = max(1, 128 // size)  # small audit images are enlarged for viewing (labels need the width)
    big = lambda a: np.kron(a, np.ones((zoom, zoom), dtype=np.float32))  # noqa: E731
    panels = [[big(samples[k]), big(refs[rows[k].ssim_index]), big(np.abs(samples[k] - refs[rows[k].ssim_index]))]
              for k in order]
    row_labels = [f"#{Path(rows[k].sample).name.split('.')[0][-6:]} {rows[k].ssim:.2f}"
                  f"{' FLAG' if rows[k].flagged else ''}" for k in order]
    panel_png(panels, ["", "nearest train", "|diff|"], outs["png"], vmaxes=[1.5, 1.5, 0.75],
              overwrite=overwrite, row_labels=row_labels)
    return rows, outs


def memorisation_rate(rows: Sequence[AuditRow]) -> float:
    """Fraction of flagged samples."""
    return float(np.mean([r.flagged for r in rows])) if rows else float("nan")


__all__ = ["AUDIT_SIZE", "L2_THRESHOLD", "SSIM_THRESHOLD", "AuditRow", "audit", "audit_dir", "load_training_slices",
           "memorisation_rate", "prepare", "read_sample", "ssim_against"]

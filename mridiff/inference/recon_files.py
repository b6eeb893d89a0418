"""``mridiff reconstruct``: fastMRI HDF5 files in, submission HDF5 + NIfTI + PNG + metrics out.

A file that already holds undersampled k-space (a ``mask`` dataset) is reconstructed with its own mask; a fully
sampled file is undersampled retrospectively with a mask seeded per volume (so every method sees the same
mask) and its ground truth is kept for metrics. Slices stream through in batches: a volume is never held
whole in memory.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mridiff.data.fastmri_h5 import ScanInfo, open_scan, read_slice
from mridiff.data.nifti import write_nifti
from mridiff.data.transforms import center_crop
from mridiff.errors import InputError
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import check_writable
from mridiff.io.figures import panel_png
from mridiff.io.outputs import fastmri_affine, volume_to_nifti_array, write_submission_h5
from mridiff.metrics import uncertainty_calibration, volume_metrics
from mridiff.physics.coils import rss
from mridiff.physics.fft import ifft2c
from mridiff.physics.masks import MaskSpec, make_mask


@dataclass
class ReconOptions:
    """What ``mridiff reconstruct`` does to each file (CLI flags map one to one)."""

    steps: int = 50
    sampler: str = "ddim"
    dc: str = "hard"
    samples: int = 1
    seed: int = 0
    batch_size: int = 4
    acceleration: int = 4
    center_fraction: float | None = None
    mask_type: str = "random"
    sens_method: str = "espirit"
    noise_std: float | None = None
    overwrite: bool = False
    progress: bool = True
    png_slices: int = 3


def volume_seed(path: Path, seed: int) -> int:
    """A per-volume mask seed: the same file and seed give the same mask for every method."""
    return (zlib.crc32(path.name.encode()) + seed) % (2**31 - 1)


def output_paths(path: Path, out_dir: Path) -> dict[str, Path]:
    """Where the results for input ``path`` go (submission file keeps the input's name)."""
    stem = path.name[: -len(".h5")] if path.name.endswith(".h5") else path.stem
    return {
        "h5": out_dir / "reconstructions" / path.name,
        "nifti": out_dir / "nifti" / f"{stem}.nii.gz",
        "std": out_dir / "nifti" / f"{stem}_std.nii.gz",
        "png": out_dir / "figures" / f"{stem}.png",
    }


def _sampling_mask(info: ScanInfo, opts: ReconOptions) -> tuple[torch.Tensor, bool]:
    """The file's own mask, or a retrospective one; the flag says whether it is retrospective."""
    if info.mask is not None:
        return torch.from_numpy(info.mask).float(), False
    spec = MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)
    return make_mask(spec, info.encoded_size, volume_seed(info.path, opts.seed)), True


def _warn_out_of_domain(info: ScanInfo, meta: dict[str, Any]) -> None:
    """Warn when a scan lies outside what the model was trained on (never echoing header text)."""
    domain = meta.get("domain") or {}
    side = max(info.encoded_size[:2])
    matrix = domain.get("matrix")
    trained = meta.get("training", {}).get("image_size")
    if matrix and not matrix[0] <= side <= matrix[1]:
        warnings.warn(f"{info.path}: matrix {tuple(info.encoded_size[:2])} is outside the model's training range "
                      f"({matrix[0]}-{matrix[1]} pixels); results are out of the model's domain", stacklevel=2)
    elif not matrix and trained and tuple(trained) != tuple(info.encoded_size[:2]):
        warnings.warn(f"{info.path}: matrix {tuple(info.encoded_size[:2])} differs from the model's training size "
                      f"{tuple(trained)}; results are out of the model's domain", stacklevel=2)
    acq = (info.acquisition or "").upper()
    if domain.get("contrast", "T1") == "T1" and acq and not any(tag in acq for tag in ("T1", "SIM")):
        # The header text itself is not printed: a free-text attribute may carry identifiers.
        warnings.warn(f"{info.path}: the acquisition attribute does not name a T1-weighted scan; the model was "
                      "trained on T1 brain data only", stacklevel=2)


def reconstruct_file(path: Path, out_dir: Path, rec: Reconstructor, opts: ReconOptions) -> dict[str, Any]:
    """Reconstruct one file and write its outputs; returns its metrics (empty without a ground truth).

    Raises:
        InputError: bad input file, or outputs that exist without ``overwrite``.

    """
    info = open_scan(path)
    outs = output_paths(path, out_dir)
    for p in outs.values():
        check_writable(p, opts.overwrite)
    _warn_out_of_domain(info, rec.model.meta)
    mask, retrospective = _sampling_mask(info, opts)
    means, stds, zfs, gts = [], [], [], []
    nfe, seconds = 0, 0.0
    chunks = range(0, info.num_slices, opts.batch_size)
    for start in tqdm(chunks, desc=path.name, unit="batch", disable=not opts.progress):
        idx = range(start, min(start + opts.batch_size, info.num_slices))
        slices = [read_slice(info, i) for i in idx]
        kspace = torch.from_numpy(np.stack([s.kspace for s in slices]))
        result = rec.reconstruct(kspace, mask, multicoil=info.multicoil, steps=opts.steps, sampler=opts.sampler,
                                 dc=opts.dc, samples=opts.samples, seed=opts.seed + start,
                                 batch_size=opts.batch_size, noise_std=opts.noise_std,
                                 sens_method=opts.sens_method, progress=False)
        nfe, seconds = result.nfe, seconds + result.seconds_per_slice * len(idx)
        means.append(result.mean)
        stds.append(result.std)
        zfs.append(result.zero_filled)
        for s in slices:
            if s.target is not None:
                gts.append(s.target)
            elif retrospective:
                full = ifft2c(torch.from_numpy(s.kspace))
                gts.append((rss(full, dim=0) if info.multicoil else full.abs()).numpy())
    size = info.recon_size
    mean = center_crop(np.concatenate(means), size)
    std = center_crop(np.concatenate(stds), size)
    zf = center_crop(np.concatenate(zfs), size)
    gt = center_crop(np.stack(gts), size) if len(gts) == info.num_slices else None
    affine = fastmri_affine(info.fov_mm, size)
    picks = np.unique(np.linspace(info.num_slices // 4, 3 * info.num_slices // 4, opts.png_slices).astype(int))
    rows = []
    for i in picks:
        target = gt[i] if gt is not None else np.zeros_like(mean[i])
        err = np.abs(mean[i] - target) if gt is not None else np.zeros_like(mean[i])
        rows.append([zf[i], mean[i], target, err, std[i]])
    vmax = float(np.percentile(gt if gt is not None else mean, 99.5))
    err_max = vmax / 4
    # All outputs of a file or none: the submission file (which directory mode takes as "finished") is written
    # last, and a failure part-way removes what this call already wrote.
    written: list[Path] = []
    try:
        written.append(write_nifti(outs["nifti"], volume_to_nifti_array(mean), affine, overwrite=opts.overwrite))
        written.append(write_nifti(outs["std"], volume_to_nifti_array(std), affine, overwrite=opts.overwrite))
        panel_png(rows, ["zero-filled", "mridiff", "target", "|error| x4", "std x4"], outs["png"],
                  vmaxes=[vmax, vmax, vmax, err_max, err_max], overwrite=opts.overwrite,
                  row_labels=[f"slice {i}" for i in picks])
        written.append(outs["png"])
        write_submission_h5(outs["h5"], mean, opts.overwrite, {"uncertainty": std} if opts.samples > 1 else None)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    metrics: dict[str, Any] = {"file": path.name, "slices": info.num_slices, "nfe": nfe,
                               "seconds_per_slice": seconds / info.num_slices,
                               "mask": "file" if not retrospective else f"{opts.mask_type} x{opts.acceleration}",
                               "outputs": {k: str(v) for k, v in outs.items()}}
    if gt is not None:
        metrics["mridiff"] = volume_metrics(gt, mean)
        metrics["zero_filled"] = volume_metrics(gt, zf)
        if opts.samples > 1:
            metrics["uncertainty"] = uncertainty_calibration(gt, mean, std)
    return metrics


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Expand directories to their ``*.h5`` files; missing paths are user errors."""
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise InputError(p, "directory holds no .h5 files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise InputError(p, "input not found")
    return files

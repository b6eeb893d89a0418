"""``mridiff reconstruct``: fastMRI HDF5 files in, submission HDF5 + NIfTI + PNG + metrics out.

A file that already holds undersampled k-space (a ``mask`` dataset) is reconstructed with its own mask; a fully
sampled file is undersampled retrospectively with a mask seeded per volume (so every method sees the same
mask), which is announced as a note, and its ground truth is kept for metrics. Slices stream through in batches:
a volume is never held whole in memory.

Metrics never fail a finished reconstruction: an error while computing them is a warning and an entry
``metrics_error`` in ``metrics.json``. :class:`MetricsLog` keeps ``metrics.json`` of an output directory up to
date after every finished file (atomically), and keeps the entries of earlier runs.
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Callable
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
from mridiff.inference.calibration import risk_score
from mridiff.inference.provenance import aggregate, file_record
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import check_writable
from mridiff.io.figures import panel_png
from mridiff.io.outputs import fastmri_affine, volume_to_nifti_array, write_json, write_submission_h5
from mridiff.metrics import uncertainty_calibration, volume_metrics
from mridiff.physics.coils import rss
from mridiff.physics.fft import ifft2c
from mridiff.physics.masks import MaskSpec, make_mask

MASKS_1D = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
METRICS_JSON_MAX_BYTES = 64 * 2**20


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
    coverage: float = 0.9


# Hallucination-risk flag: a slice is flagged when more than RISK_FLAG of its object pixels have a calibrated
# half-width above RISK_WIDTH of the slice's 99th percentile (the data leave a large part of the image open).
RISK_WIDTH = 0.1
RISK_FLAG = 0.1
RISK_RULE = (f"more than {RISK_FLAG:.0%} of object pixels with a calibrated half-width above {RISK_WIDTH:.0%} of the "
             "slice's 99th percentile")


def volume_seed(path: Path, seed: int) -> int:
    """A per-volume mask seed: the same file and seed give the same mask for every method."""
    return (zlib.crc32(path.name.encode()) + seed) % (2**31 - 1)


def output_paths(path: Path, out_dir: Path, with_std: bool = True) -> dict[str, Path]:
    """Where the results for input ``path`` go (submission file keeps the input's name).

    Args:
        path: The input file.
        out_dir: The ``--out`` directory.
        with_std: Include the std-map NIfTI (only written for K > 1 samples).

    """
    stem = path.name[: -len(".h5")] if path.name.endswith(".h5") else path.stem
    outs = {
        "h5": out_dir / "reconstructions" / path.name,
        "nifti": out_dir / "nifti" / f"{stem}.nii.gz",
        "std": out_dir / "nifti" / f"{stem}_std.nii.gz",
        "png": out_dir / "figures" / f"{stem}.png",
    }
    if not with_std:
        del outs["std"]
    return outs


def retrospective_note(path: Path, opts: ReconOptions) -> str:
    """The line saying that a fully sampled file is undersampled here, and how."""
    spec = MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)
    kind = f"{spec.kind} {'1D' if spec.kind in MASKS_1D else '2D'} mask"
    return (f"{path} is fully sampled; undersampling retrospectively at {spec.acceleration}x ({kind}, "
            f"centre fraction {spec.fraction:g})")


def _retrospective_spec(opts: ReconOptions) -> MaskSpec:
    return MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)


def _sampling_mask(info: ScanInfo, opts: ReconOptions) -> tuple[torch.Tensor, bool]:
    """The file's own mask, or a retrospective one; the flag says whether it is retrospective."""
    if info.mask is not None:
        return torch.from_numpy(info.mask).float(), False
    spec = _retrospective_spec(opts)
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


def _volume_metrics(gt: np.ndarray, mean: np.ndarray, zf: np.ndarray, std: np.ndarray,
                    samples: int) -> dict[str, Any]:
    out: dict[str, Any] = {"mridiff": volume_metrics(gt, mean), "zero_filled": volume_metrics(gt, zf)}
    if samples > 1:
        out["uncertainty"] = uncertainty_calibration(gt, mean, std)
    return out


def reconstruct_file(path: Path, out_dir: Path, rec: Reconstructor, opts: ReconOptions,
                     note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Reconstruct one file and write its outputs; returns its metrics (no image metrics without a ground truth).

    Args:
        path: The fastMRI-layout input.
        out_dir: The ``--out`` directory.
        rec: The reconstructor.
        opts: What to do.
        note: Called with one line when the file is fully sampled and undersampled retrospectively (the CLI
            prints it first, so a hidden default never goes unsaid).

    Raises:
        InputError: bad input file, or outputs that exist without ``overwrite``.

    """
    info = open_scan(path)
    outs = output_paths(path, out_dir, with_std=opts.samples > 1)
    for p in outs.values():
        check_writable(p, opts.overwrite)
    mask, retrospective = _sampling_mask(info, opts)
    if retrospective and note is not None:
        note(retrospective_note(path, opts))
    _warn_out_of_domain(info, rec.model.meta)
    means, stds, zfs, gts = [], [], [], []
    bounds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    calibration: dict[str, Any] | None = None
    nfe, seconds = 0, 0.0
    chunks = range(0, info.num_slices, opts.batch_size)
    for start in tqdm(chunks, desc=path.name, unit="batch", disable=not opts.progress):
        idx = range(start, min(start + opts.batch_size, info.num_slices))
        slices = [read_slice(info, i) for i in idx]
        kspace = torch.from_numpy(np.stack([s.kspace for s in slices]))
        result = rec.reconstruct(kspace, mask, multicoil=info.multicoil, steps=opts.steps, sampler=opts.sampler,
                                 dc=opts.dc, samples=opts.samples, seed=opts.seed + start,
                                 batch_size=opts.batch_size, noise_std=opts.noise_std,
                                 sens_method=opts.sens_method, progress=False, coverage=opts.coverage)
        nfe, seconds = result.nfe, seconds + result.seconds_per_slice * len(idx)
        calibration = result.calibration
        if result.interval is not None:
            bounds.append((result.interval.std_calibrated, result.interval.lower, result.interval.upper))
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
    gt, metrics_error = None, None
    if len(gts) == info.num_slices:
        try:
            gt = center_crop(np.stack(gts), size)
        except ValueError:  # a stored target smaller than the recon size: the reconstruction still stands
            metrics_error = f"target slices {tuple(gts[0].shape)} are smaller than the reconstruction {size}"
            warnings.warn(f"{path}: {metrics_error}; no metrics", stacklevel=2)
    calibrated = None
    if bounds and len(bounds) == len(means):
        calibrated = {name: center_crop(np.concatenate([b[j] for b in bounds]), size)
                      for j, name in enumerate(("std_calibrated", "lower", "upper"))}
    affine = fastmri_affine(info.fov_mm, size, info.num_slices)
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
        if "std" in outs:  # K = 1 has no spread: no all-zero std map
            written.append(write_nifti(outs["std"], volume_to_nifti_array(std), affine, overwrite=opts.overwrite))
        panel_png(rows, ["zero-filled", "mridiff", "target", "|error| x4", "std x4"], outs["png"],
                  vmaxes=[vmax, vmax, vmax, err_max, err_max], overwrite=opts.overwrite,
                  row_labels=[f"slice {i}" for i in picks])
        written.append(outs["png"])
        extra = {"uncertainty": std} if opts.samples > 1 else {}
        if calibrated is not None:  # calibrated interval at opts.coverage (see Reconstructor.reconstruct)
            extra.update(calibrated)
        write_submission_h5(outs["h5"], mean, opts.overwrite, extra or None)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    if "std" not in outs and opts.overwrite:  # a std map of an earlier K > 1 run no longer matches the mean
        output_paths(path, out_dir)["std"].unlink(missing_ok=True)
    metrics: dict[str, Any] = {"file": path.name, "slices": info.num_slices, "nfe": nfe,
                               "seconds_per_slice": seconds / info.num_slices,
                               "outputs": {k: str(v) for k, v in outs.items()},
                               **file_record(vars(opts), mask.numpy(), _retrospective_spec(opts) if retrospective
                                             else None)}
    if metrics_error is not None:
        metrics["metrics_error"] = metrics_error
    if calibration is not None:
        metrics["calibration"] = dict(calibration)
        if calibrated is not None:
            risk = risk_score(calibrated["std_calibrated"], mean, RISK_WIDTH)
            flagged = [int(i) for i in np.flatnonzero(risk > RISK_FLAG)]
            metrics["calibration"].update({"risk_per_slice": [round(float(r), 4) for r in risk],
                                           "flagged_slices": flagged, "risk_rule": RISK_RULE})
            if flagged:
                warnings.warn(f"{path}: slices {flagged} have a high hallucination risk ({RISK_RULE})", stacklevel=2)
    if gt is not None:
        try:
            metrics.update(_volume_metrics(gt, mean, zf, std, opts.samples))
        except Exception as exc:  # noqa: BLE001 - the outputs are written; metrics must never undo a finished file
            detail = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
            warnings.warn(f"{path}: metrics could not be computed ({detail}); the reconstruction is written",
                          stacklevel=2)
            metrics["metrics_error"] = detail
    return metrics


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Expand directories to their ``*.h5`` files; missing paths are user errors.

    A file named twice (directly and through its directory, say) is kept once. Two different files whose outputs
    would have the same names (``a/scan.h5`` and ``b/scan.h5``) are refused up front: the submission file must keep
    the input's name (``fastmri.evaluate`` pairs files by name), so renaming one is no option, and skipping the
    second as "already done" would silently lose it.

    Raises:
        InputError: For a missing input, a directory without ``.h5`` files, or colliding output names.

    """
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
    unique: list[Path] = []
    seen: set[Path] = set()
    claimed: dict[Path, Path] = {}
    for f in files:
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        for out in output_paths(f, Path()).values():
            if out in claimed:
                raise InputError(f, f"same output name as {claimed[out]}: both would be written to {out}",
                                 "rename one, or reconstruct each folder into its own --out")
            claimed[out] = f
        unique.append(f)
    return unique


class MetricsLog:
    """``metrics.json`` of an output directory, rewritten atomically after every finished file.

    Entries of earlier runs are kept (a rerun that skips finished files still lists them); an entry is replaced
    only when its file is reconstructed again. A ``metrics.json`` that mridiff cannot read as its own is refused
    without ``overwrite`` (and replaced with it), before any work is done.

    Beside the entries the file holds the run's ``options``, its ``provenance`` (model file and SHA-256, software
    versions, device: see :mod:`mridiff.inference.provenance`; each entry also carries the provenance of the run
    that made it) and an ``aggregate`` over all entries (mean and sample standard deviation per method and metric,
    as fastMRI's evaluate reports them).

    Args:
        path: The ``metrics.json``.
        options: The run's settings, stored beside the entries.
        overwrite: Whether an unreadable or foreign ``metrics.json`` may be replaced.
        provenance: Where the results come from (may also be set later, once the model is loaded).

    Raises:
        InputError: For a ``metrics.json`` that is not mridiff's, without ``overwrite``.

    """

    def __init__(self, path: Path, options: dict[str, Any], overwrite: bool,
                 provenance: dict[str, Any] | None = None) -> None:
        self.path = path
        self.options = options
        self.provenance = provenance
        self.entries: list[dict[str, Any]] = self._load(overwrite)

    def _load(self, overwrite: bool) -> list[dict[str, Any]]:
        if not self.path.exists() and not self.path.is_symlink():
            return []
        entries: Any = None
        try:
            if self.path.is_file() and self.path.stat().st_size <= METRICS_JSON_MAX_BYTES:
                entries = json.loads(self.path.read_text(encoding="utf-8")).get("files")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            entries = None
        if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries):
            return entries
        if overwrite and not self.path.is_dir():
            return []
        raise InputError(self.path, "exists but is not a metrics file written by mridiff",
                         "pass --overwrite to replace it, or choose another --out")

    def add(self, entry: dict[str, Any]) -> None:
        """Record one finished file (replacing an earlier entry of the same file) and rewrite the file."""
        if self.provenance is not None and "provenance" not in entry:
            entry = {**entry, "provenance": self.provenance}
        same = [i for i, e in enumerate(self.entries) if e.get("file") == entry["file"]]
        if same:
            self.entries[same[0]] = entry
        else:
            self.entries.append(entry)
        write_json(self.path, {"files": self.entries, "options": self.options, "provenance": self.provenance,
                               "aggregate": aggregate(self.entries)}, overwrite=True)

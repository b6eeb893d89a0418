"""The ``mridiff reconstruct`` file workflow: one fastMRI HDF5 file in, its result files and metrics out.

    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.workflows.recon import ReconOptions, reconstruct_file
    metrics = reconstruct_file(Path("scan.h5"), Path("out"), Reconstructor(), ReconOptions(steps=20))

Three steps, each usable alone: :func:`read_input` (the scan, its mask and the slices to do), :func:`run` (the
sampling), :func:`write_outputs` (submission HDF5, NIfTI, PNG panel; returns the metrics entry).

A file that already holds undersampled k-space (a ``mask`` dataset) is reconstructed with its own mask; a fully
sampled file is undersampled retrospectively with a mask seeded per volume (so every method sees the same
mask), which is announced as a note, and its ground truth is kept for metrics. Slices stream through in batches:
a volume is never held whole in memory. ``slices="a:b"`` does part of a volume: the outputs hold those slices
(the NIfTI placed where they lie in the volume), and each slice is the same as in a run over the whole volume.

Metrics never fail a finished reconstruction: an error while computing them is a warning and an entry
``metrics_error`` in ``metrics.json``.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mridiff.data.fastmri_h5 import ScanInfo, open_scan, read_slice
from mridiff.data.nifti import write_nifti
from mridiff.data.transforms import center_crop
from mridiff.diffusion.samplers import SamplerName
from mridiff.errors import InputError
from mridiff.inference.calibration import risk_score
from mridiff.inference.options import SamplingOptions
from mridiff.inference.pipeline import SamplingResult
from mridiff.inference.provenance import file_record
from mridiff.inference.reconstruct import Reconstructor, as_masks
from mridiff.io.atomic import check_writable
from mridiff.io.outputs import fastmri_affine, volume_to_nifti_array, write_submission_h5
from mridiff.metrics import uncertainty_calibration, volume_metrics
from mridiff.physics.coils import magnitude_image
from mridiff.physics.consistency import DCMode
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.workflows.common import parse_slices
from mridiff.workflows.panels import pick_rows, write_panel, write_risk_panel

MASKS_1D = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
# Calibrated-interval NIfTIs written beside the mean when the model is calibrated for the mode (K > 1).
CALIBRATED_OUTPUTS = ("std_calibrated", "lower", "upper")
# Hallucination-risk flag: a slice is flagged when more than RISK_FLAG of its object pixels have a calibrated
# half-width above RISK_WIDTH of the slice's 99th percentile (the data leave a large part of the image open).
RISK_WIDTH = 0.1
RISK_FLAG = 0.1
RISK_RULE = (f"more than {RISK_FLAG:.0%} of object pixels with a calibrated half-width above {RISK_WIDTH:.0%} of the "
             "slice's 99th percentile")


@dataclass
class ReconOptions:
    """What ``mridiff reconstruct`` does to each file (CLI flags map one to one; see :class:`SamplingOptions`).

    ``slices`` is ``"a:b"`` (0-based, ``b`` excluded; either end may be left open) or ``None`` for all slices.
    """

    steps: int | None = None
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
    slices: str | None = None
    cg_iters: int = 5

    def sampling(self) -> SamplingOptions:
        """The sampling part of these options (the progress bar runs over the network calls of the file)."""
        return SamplingOptions(steps=self.steps, sampler=SamplerName(self.sampler), dc=DCMode(self.dc),
                               samples=self.samples, seed=self.seed, batch_size=self.batch_size,
                               progress=self.progress, cg_iters=self.cg_iters)


@dataclass
class ReconInput:
    """An opened scan and what to do with it.

    Attributes:
        info: the scan (read lazily, one slice at a time).
        mask: the mask used, float32 ``(H, W)``.
        retrospective: whether ``mask`` was drawn here (the file was fully sampled).
        indices: the slices to reconstruct, in order (contiguous).

    """

    info: ScanInfo
    mask: torch.Tensor
    retrospective: bool
    indices: list[int]


def volume_seed(path: Path, seed: int) -> int:
    """A per-volume mask seed: the same file and seed give the same mask for every method."""
    return (zlib.crc32(path.name.encode()) + seed) % (2**31 - 1)


def output_paths(path: Path, out_dir: Path, with_std: bool = True, calibrated: bool = True) -> dict[str, Path]:
    """Where the results for input ``path`` go (submission file keeps the input's name).

    Args:
        path: The input file.
        out_dir: The ``--out`` directory.
        with_std: Include the std-map NIfTI (only written for K > 1 samples).
        calibrated: Include the calibrated-interval NIfTIs and the risk PNG (only written for K > 1 samples
            with a calibration entry for the mode).

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
    if calibrated:  # the calibrated interval at --coverage, and the mean with its half-width as a risk overlay
        for key in CALIBRATED_OUTPUTS:
            outs[key] = out_dir / "nifti" / f"{stem}_{key}.nii.gz"
        outs["risk_png"] = out_dir / "figures" / f"{stem}_risk.png"
    return outs


def retrospective_spec(opts: ReconOptions) -> MaskSpec:
    """The mask a fully sampled file is undersampled with."""
    return MaskSpec(opts.mask_type, opts.acceleration, opts.center_fraction)


def retrospective_note(path: Path, opts: ReconOptions) -> str:
    """The line saying that a fully sampled file is undersampled here, and how."""
    spec = retrospective_spec(opts)
    kind = f"{spec.kind} {'1D' if spec.kind in MASKS_1D else '2D'} mask"
    return (f"{path} is fully sampled; undersampling retrospectively at {spec.acceleration}x ({kind}, "
            f"centre fraction {spec.fraction:g})")


def _warn_out_of_domain(info: ScanInfo, meta: dict[str, Any]) -> None:
    """Warn when a scan lies outside what the model was trained on (never echoing header text).

    Both checks follow the model card: ``domain.matrix`` (the range of image sides the model's training covered,
    e.g. 128-384 for patches of 256x256 images with zoom) is compared with the reconstructed matrix, which sets the
    anatomy's size in pixels (readout oversampling, fastMRI's 640x320 k-space of a 320x320 image, does not change
    it); a card without a range compares the k-space grid with the training size. ``domain.contrast`` ``"any"``
    (intensity-remapped training) accepts every contrast; ``"T1"`` (or no domain) warns on a non-T1 acquisition.
    """
    domain = meta.get("domain") or {}
    matrix = domain.get("matrix")
    trained = meta.get("training", {}).get("image_size")
    if matrix and not matrix[0] <= max(info.recon_size[:2]) <= matrix[1]:
        warnings.warn(f"{info.path}: image matrix {tuple(info.recon_size[:2])} is outside the model's training "
                      f"range ({matrix[0]}-{matrix[1]} pixels); results are out of the model's domain", stacklevel=2)
    elif not matrix and trained and tuple(trained) != tuple(info.encoded_size[:2]):
        warnings.warn(f"{info.path}: matrix {tuple(info.encoded_size[:2])} differs from the model's training size "
                      f"{tuple(trained)}; results are out of the model's domain", stacklevel=2)
    acq = (info.acquisition or "").upper()
    if domain.get("contrast", "T1") == "T1" and acq and not any(tag in acq for tag in ("T1", "SIM")):
        # The header text itself is not printed: a free-text attribute may carry identifiers.
        warnings.warn(f"{info.path}: the acquisition attribute does not name a T1-weighted scan; the model was "
                      "trained on T1 brain data only", stacklevel=2)


def read_input(path: Path, opts: ReconOptions, meta: dict[str, Any],
               note: Callable[[str], None] | None = None) -> ReconInput:
    """Open a scan, choose its mask and slices, and say what is assumed (notes) or out of domain (warnings).

    Raises:
        InputError: for a bad file or a slice range that selects nothing of it.

    """
    info = open_scan(path)
    if info.mask is not None:
        mask, retrospective = torch.from_numpy(info.mask).float(), False
    else:
        mask, retrospective = make_mask(retrospective_spec(opts), info.encoded_size,
                                        volume_seed(info.path, opts.seed)), True
    if retrospective and note is not None:
        note(retrospective_note(path, opts))
    try:
        indices = parse_slices(opts.slices).indices(info.num_slices) if opts.slices else list(range(info.num_slices))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    _warn_out_of_domain(info, meta)
    return ReconInput(info, mask, retrospective, indices)


def run(inp: ReconInput, rec: Reconstructor, opts: ReconOptions) -> SamplingResult:
    """Reconstruct the selected slices of an opened scan (one row per index of ``inp.indices``)."""
    info = inp.info
    masks = as_masks(inp.mask, info.num_slices, info.encoded_size[:2])
    return rec.reconstruct_slices(
        lambda idx: torch.from_numpy(np.stack([read_slice(info, i).kspace for i in idx])), info.num_slices, masks,
        opts.sampling(), multicoil=info.multicoil, sens_method=opts.sens_method, noise_std=opts.noise_std,
        coverage=opts.coverage, indices=inp.indices)


def _ground_truth(inp: ReconInput, path: Path) -> tuple[np.ndarray | None, str | None]:
    """The reference slices cropped to the recon size (the stored target, else that of fully sampled k-space)."""
    info = inp.info
    truths = []
    for i in inp.indices:
        data = read_slice(info, i)
        if data.target is not None:
            truths.append(data.target)
        elif inp.retrospective:
            truths.append(magnitude_image(torch.from_numpy(data.kspace), info.multicoil).numpy())
        else:
            return None, None
    try:
        return center_crop(np.stack(truths), info.recon_size), None
    except ValueError:  # a stored target smaller than the recon size: the reconstruction still stands
        error = f"target slices {tuple(truths[0].shape)} are smaller than the reconstruction {info.recon_size}"
        warnings.warn(f"{path}: {error}; no metrics", stacklevel=3)
        return None, error


def _calibration_record(calibration: dict[str, Any], std_calibrated: np.ndarray | None, mean: np.ndarray,
                        path: Path) -> dict[str, Any]:
    record = dict(calibration)
    if std_calibrated is not None:
        risk = risk_score(std_calibrated, mean, RISK_WIDTH)
        flagged = [int(i) for i in np.flatnonzero(risk > RISK_FLAG)]
        record.update({"risk_per_slice": [round(float(r), 4) for r in risk], "flagged_slices": flagged,
                       "risk_rule": RISK_RULE})
        if flagged:
            warnings.warn(f"{path}: slices {flagged} have a high hallucination risk ({RISK_RULE})", stacklevel=3)
    return record


def write_outputs(path: Path, out_dir: Path, inp: ReconInput, result: SamplingResult,
                  opts: ReconOptions) -> dict[str, Any]:
    """Write a file's submission HDF5, NIfTI (and std map for K > 1) and PNG panel; return its metrics entry.

    All outputs of a file or none: the submission file (which directory runs take as "finished") is written last,
    and a failure part-way removes what this call already wrote.
    """
    info = inp.info
    size = info.recon_size
    outs = output_paths(path, out_dir, with_std=opts.samples > 1, calibrated=result.interval is not None)
    mean, std, zf = (center_crop(a, size) for a in (result.mean, result.std, result.zero_filled))
    gt, metrics_error = _ground_truth(inp, path)
    calibrated: dict[str, np.ndarray] | None = None
    if result.interval is not None:
        iv = result.interval
        calibrated = {"std_calibrated": center_crop(iv.std_calibrated, size), "lower": center_crop(iv.lower, size),
                      "upper": center_crop(iv.upper, size)}
    shift = np.eye(4)
    shift[2, 3] = inp.indices[0]  # part of a volume: its NIfTI lies where those slices lie in the whole volume
    affine = fastmri_affine(info.fov_mm, size, info.num_slices) @ shift
    rows = pick_rows(len(inp.indices), opts.png_slices)
    written: list[Path] = []
    try:
        written.append(write_nifti(outs["nifti"], volume_to_nifti_array(mean), affine, overwrite=opts.overwrite))
        if "std" in outs:  # K = 1 has no spread: no all-zero std map
            written.append(write_nifti(outs["std"], volume_to_nifti_array(std), affine, overwrite=opts.overwrite))
        written.append(write_panel(outs["png"], {"zero-filled": zf, "mridiff": mean}, gt,
                                   std if opts.samples > 1 else None, rows,
                                   [f"slice {inp.indices[i]}" for i in rows], overwrite=opts.overwrite))
        if calibrated is not None:
            for key in CALIBRATED_OUTPUTS:
                written.append(write_nifti(outs[key], volume_to_nifti_array(calibrated[key]), affine,
                                           overwrite=opts.overwrite))
            written.append(write_risk_panel(outs["risk_png"], mean, calibrated["std_calibrated"],
                                            risk_score(calibrated["std_calibrated"], mean, RISK_WIDTH).tolist(), rows,
                                            [f"slice {inp.indices[i]}" for i in rows], overwrite=opts.overwrite))
        extra = {"uncertainty": std} if opts.samples > 1 else {}
        extra.update(calibrated or {})  # calibrated interval at opts.coverage (see Reconstructor.reconstruct)
        write_submission_h5(outs["h5"], mean, opts.overwrite, extra or None)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    if opts.overwrite:  # std maps / intervals of an earlier K > 1 run no longer match the mean
        for key, old in output_paths(path, out_dir).items():
            if key not in outs:
                old.unlink(missing_ok=True)
    entry: dict[str, Any] = {
        "file": path.name, "slices": len(inp.indices), "slice_range": [inp.indices[0], inp.indices[-1] + 1],
        "volume_slices": info.num_slices, "nfe": result.nfe, "seconds_per_slice": result.seconds_per_slice,
        "outputs": {k: str(v) for k, v in outs.items()},
        **file_record(vars(opts), inp.mask.numpy(), retrospective_spec(opts) if inp.retrospective else None)}
    if metrics_error is not None:
        entry["metrics_error"] = metrics_error
    if result.calibration is not None:
        entry["calibration"] = _calibration_record(result.calibration, None if calibrated is None
                                                   else calibrated["std_calibrated"], mean, path)
    if gt is not None:
        try:
            entry.update({"mridiff": volume_metrics(gt, mean), "zero_filled": volume_metrics(gt, zf)})
            if opts.samples > 1:
                entry["uncertainty"] = uncertainty_calibration(gt, mean, std)
        except Exception as exc:  # noqa: BLE001 - the outputs are written; metrics must never undo a finished file
            detail = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
            warnings.warn(f"{path}: metrics could not be computed ({detail}); the reconstruction is written",
                          stacklevel=2)
            entry["metrics_error"] = detail
    return entry


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
    for p in output_paths(path, out_dir, with_std=opts.samples > 1, calibrated=opts.samples > 1).values():
        check_writable(p, opts.overwrite)
    inp = read_input(path, opts, rec.model.meta, note)
    return write_outputs(path, out_dir, inp, run(inp, rec, opts), opts)


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Expand directories to their ``*.h5`` files (sorted); missing paths are user errors.

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

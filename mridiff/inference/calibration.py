"""Calibrated uncertainty: split conformal prediction on the per-pixel std of K diffusion samples.

K posterior samples give a per-pixel std, but on their own such maps are over-confident (a few samples of an
imperfect prior spread too little). Split conformal prediction (Angelopoulos & Bates, 2021) turns them into
intervals with a stated coverage: on calibration scans with a known truth, the score of a pixel is
``|truth - mean| / (std + eps)``; the ``ceil((n + 1) q) / n`` empirical quantile ``s_q`` of the scores makes
``mean ± s_q (std + eps)`` cover the truth for a fraction ``>= q`` of the pixels of a new scan drawn like the
calibration scans (marginal coverage over pixels of exchangeable scans).

What it does not promise: coverage of any single pixel, or of a scan unlike the calibration data (another
anatomy, contrast, noise level, acceleration or mask). Hence one quantile per *mode* (single/multi-coil,
acceleration, data-consistency kind, K), and a warning when a mode has no entry.

Scores are taken over the object's pixels only (the mean above ``FOREGROUND`` of its 99th percentile): in the
background truth and samples are both near zero and would fill the quantile with trivially covered pixels.
``eps`` is ``EPS_FRACTION`` of the mean's 99th percentile, so that pixels where all K samples agree still get an
interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import gaussian_filter

from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.inference.options import Preset, preset_options
from mridiff.physics.consistency import DCMode
from mridiff.physics.masks import MaskSpec, make_mask

if TYPE_CHECKING:
    from mridiff.inference.reconstruct import Reconstructor

FOREGROUND = 0.05
EPS_FRACTION = 0.01
# Gaussian smoothing (pixels) of the K-sample std before scoring: a std from K = 4 samples is itself noisy, and
# averaging it over neighbours ranks pixels by error better. Chosen on validation only (10 calibration + 10
# measured slices, 256² single-coil 4x, K = 4): Spearman(std, |error|) 0.35 raw, 0.40 at 1 px, 0.41 at 1.5 px, 0.42
# at 2 px, with the 90 % / 95 % coverage unchanged (0.91 / 0.96); 1.5 px keeps edges' uncertainty local.
STD_SMOOTHING_PX = 1.5
DEFAULT_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def mode_key(multicoil: bool, acceleration: float | None, dc: str, samples: int, matrix: int | None = None) -> str:
    """The calibration-table key of a reconstruction setting, e.g. ``singlecoil:4x:hard:K4:256px``.

    ``matrix`` (:func:`matrix_of`) is part of the mode because the prior's errors, relative to its spread, depend
    on how finely the anatomy is sampled; tables made before it was keyed have four-part keys, valid for any matrix.
    """
    acc = "unknown" if acceleration is None else f"{float(acceleration):g}x"
    key = f"{'multicoil' if multicoil else 'singlecoil'}:{acc}:{dc}:K{samples}"
    return key if matrix is None else f"{key}:{int(matrix)}px"


def matrix_of(shape: tuple[int, ...]) -> int:
    """The matrix size of an image grid ``(..., H, W)`` for the calibration key: ``round(sqrt(H W))``."""
    return int(round(math.sqrt(int(shape[-2]) * int(shape[-1]))))


@dataclass(frozen=True)
class Entry:
    """A parsed calibration-table key (:func:`parse_key`)."""

    key: str
    multicoil: bool
    acceleration: float
    dc: str
    samples: int
    matrix: int | None


def parse_key(key: str) -> Entry | None:
    """The parts of a table key, or ``None`` when it is not one :func:`mode_key` writes."""
    parts = key.split(":")
    if len(parts) not in (4, 5) or parts[0] not in ("singlecoil", "multicoil") or not parts[3].startswith("K"):
        return None
    try:
        acc = float(parts[1].removesuffix("x"))
        samples = int(parts[3][1:])
        matrix = int(parts[4].removesuffix("px")) if len(parts) == 5 else None
    except ValueError:
        return None
    return Entry(key, parts[0] == "multicoil", acc, parts[2], samples, matrix)


# A mode's entry serves masks within a factor sqrt(2) of its acceleration (half-way, geometrically, between 4x and
# 8x) and matrices within a factor sqrt(2) of its matrix (half-way between 128 and 256); beyond that it is still
# used for the nearest matrix, with a warning.
_ACC_TOLERANCE = math.log(math.sqrt(2.0))
_MATRIX_TOLERANCE = math.log(math.sqrt(2.0))


def select_entry(table: dict[str, Any] | None, multicoil: bool, acceleration: float, dc: str, samples: int,
                 matrix: int | None = None) -> Entry | None:
    """The table entry for a reconstruction setting, or ``None``.

    Among the entries of this coil setting, DC kind and K whose acceleration is within a factor sqrt(2) of the
    mask's measured acceleration (a random mask's acceleration is only close to its nominal value, more so on
    small grids), the one with the nearest matrix (log scale) wins; a key without a matrix counts as farther than
    any keyed matrix. Ties go to the nearer acceleration.
    """
    best: tuple[float, float, Entry] | None = None
    for key in table or {}:
        e = parse_key(key)
        if e is None or e.multicoil != multicoil or e.dc != dc or e.samples != samples or e.acceleration <= 0:
            continue
        acc_gap = abs(math.log(acceleration / e.acceleration))
        if acc_gap > _ACC_TOLERANCE:
            continue
        size_gap = math.inf if e.matrix is None or matrix is None else abs(math.log(matrix / e.matrix))
        if best is None or (size_gap, acc_gap) < best[:2]:
            best = (size_gap, acc_gap, e)
    return None if best is None else best[2]


def scale_of(mean: np.ndarray) -> np.ndarray:
    """Per-slice 99th percentile of the mean magnitude, shape (S, 1, 1) (the reference for ``eps`` and masks)."""
    vol = np.asarray(mean, dtype=np.float64)
    vol = vol[None] if vol.ndim == 2 else vol
    ref = np.percentile(vol.reshape(vol.shape[0], -1), 99, axis=1)
    return np.where(ref > 0, ref, 1.0)[:, None, None]


def foreground(mean: np.ndarray) -> np.ndarray:
    """Boolean (S, H, W) mask of the object: the mean above ``FOREGROUND`` of its slice's 99th percentile."""
    vol = np.asarray(mean, dtype=np.float64)
    vol = vol[None] if vol.ndim == 2 else vol
    return vol > FOREGROUND * scale_of(vol)


def smooth_std(std: np.ndarray, sigma: float) -> np.ndarray:
    """The std map smoothed in-plane, slice by slice, with a Gaussian of ``sigma`` pixels (0: unchanged)."""
    s = np.asarray(std, dtype=np.float64)
    if sigma <= 0:
        return s
    return gaussian_filter(s, sigma=(0,) * (s.ndim - 2) + (sigma, sigma), mode="nearest")


def scores(truth: np.ndarray, mean: np.ndarray, std: np.ndarray, mask: np.ndarray | None = None,
           smoothing: float = 0.0) -> np.ndarray:
    """Conformal scores ``|truth - mean| / (std + eps)`` of the pixels in ``mask`` (default: the foreground).

    ``smoothing`` (pixels) smooths the std first (:func:`smooth_std`); intervals must use the same value.
    """
    t, m, s = (np.asarray(a, dtype=np.float64) for a in (truth, mean, std))
    if m.ndim == 2:
        t, m, s = t[None], m[None], s[None]
    s = smooth_std(s, smoothing)
    eps = EPS_FRACTION * scale_of(m)
    score = np.abs(t - m) / (s + eps)
    keep = foreground(m) if mask is None else np.asarray(mask, dtype=bool).reshape(score.shape)
    return score[keep]


def conformal_quantile(values: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) level)``-th smallest score (``inf`` if that exceeds n).

    Raises:
        ValueError: if ``level`` is not in (0, 1) or there are no scores.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"coverage level must be in (0, 1), got {level}")
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("no calibration scores (empty foreground?)")
    rank = math.ceil((v.size + 1) * level)
    return float("inf") if rank > v.size else float(v[rank - 1])


@dataclass(frozen=True)
class Interval:
    """A calibrated interval for a reconstruction.

    Attributes:
        std_calibrated: ``q (std + eps)``: the half-width of the interval, float32 (S, H, W).
        lower: ``max(mean - half-width, 0)`` (magnitudes are non-negative).
        upper: ``mean + half-width``.
        level: nominal coverage.
        quantile: the conformal quantile ``q`` used.
    """

    std_calibrated: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    quantile: float


def interval(mean: np.ndarray, std: np.ndarray, quantile: float, level: float, smoothing: float = 0.0) -> Interval:
    """The calibrated interval ``mean ± quantile (std + eps)`` (see the module docstring for the guarantee).

    ``smoothing`` must be the value the quantile was calibrated with (:func:`scores`).
    """
    m = np.asarray(mean, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    squeeze = m.ndim == 2
    if squeeze:
        m, s = m[None], s[None]
    s = smooth_std(s, smoothing)
    half = quantile * (s + EPS_FRACTION * scale_of(m))
    out = [half, np.maximum(m - half, 0.0), m + half]
    if squeeze:
        out = [a[0] for a in out]
    half_f, lo, hi = (a.astype(np.float32) for a in out)
    return Interval(std_calibrated=half_f, lower=lo, upper=hi, level=level, quantile=quantile)


def coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the pixels in ``mask`` whose truth lies in ``[lower, upper]``."""
    t = np.asarray(truth)
    inside = (t >= lower) & (t <= upper)
    keep = np.asarray(mask, dtype=bool).reshape(inside.shape)
    return float(inside[keep].mean()) if keep.any() else float("nan")


def build_table(mode_scores: dict[str, np.ndarray], levels: tuple[float, ...] = DEFAULT_LEVELS,
                slices: dict[str, int] | None = None) -> dict[str, dict[str, object]]:
    """The calibration table stored in a model's metadata: per mode, the quantile per level and the sample size."""
    table: dict[str, dict[str, object]] = {}
    for key, vals in mode_scores.items():
        table[key] = {"quantiles": {f"{lvl:g}": conformal_quantile(vals, lvl) for lvl in levels},
                      "pixels": int(np.asarray(vals).size), "slices": (slices or {}).get(key)}
    return table


def lookup(table: dict[str, dict[str, object]] | None, key: str, level: float) -> float | None:
    """The quantile for ``key`` at ``level`` from a stored table, or ``None`` when the mode or level is missing."""
    if not table or key not in table:
        return None
    quantiles = table[key].get("quantiles")
    if not isinstance(quantiles, dict):
        return None
    value = quantiles.get(f"{level:g}")
    return None if value is None else float(value)


def risk_score(std_calibrated: np.ndarray, mean: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Per-slice hallucination risk: the fraction of object pixels with a wide calibrated interval.

    A pixel counts when its half-width exceeds ``threshold`` of the slice's 99th percentile: there the measured
    data do not pin the image down, and the prior fills it in.
    """
    half = np.asarray(std_calibrated, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    if m.ndim == 2:
        half, m = half[None], m[None]
    wide = half > threshold * scale_of(m)
    fg = foreground(m)
    counts = fg.reshape(fg.shape[0], -1).sum(axis=1)
    frac = (wide & fg).reshape(fg.shape[0], -1).sum(axis=1) / np.maximum(counts, 1)
    return frac.astype(np.float64)


def calibrated_interval(meta: dict[str, Any], mean: np.ndarray, std: np.ndarray, multicoil: bool,
                        acceleration: float, dc: str, samples: int, level: float, *,
                        sampling: tuple[str, int] | None = None) -> tuple[Interval | None, dict[str, Any]]:
    """The calibrated interval from a model's calibration table, or ``None`` and why (with a warning).

    The entry is chosen by :func:`select_entry` for this coil setting, DC kind, K, the mask's measured
    acceleration and the matrix of ``mean``.

    Args:
        meta: the model's metadata (its ``calibration`` entry holds the table).
        mean: mean magnitude (S, H, W).
        std: per-pixel std over K samples (S, H, W).
        multicoil: the coil setting.
        acceleration: the measured acceleration of the mask.
        dc: the data-consistency kind.
        samples: K.
        level: nominal coverage.
        sampling: this run's (sampler, network calls); when the table was made with another setting, the interval
            is still returned, with a warning and a ``setting_mismatch`` note (its std distribution differs).

    """
    calibration = meta.get("calibration") or {}
    table = calibration.get("table") or {}
    matrix = matrix_of(np.shape(mean))
    entry = select_entry(table, multicoil, acceleration, dc, samples, matrix)
    wanted = mode_key(multicoil, round(acceleration, 1), dc, samples, matrix)
    if entry is None:
        warnings.warn(f"no calibration entry for {wanted} in this model; the std map is not calibrated "
                      "(run `mridiff calibrate` on validation scans)", stacklevel=3)
        return None, {"status": "uncalibrated", "mode": wanted, "level": level}
    quantile = lookup(table, entry.key, level)
    if quantile is None:
        warnings.warn(f"the calibration of {entry.key} has no {level:g} level; the std map is not calibrated",
                      stacklevel=3)
        return None, {"status": "uncalibrated", "mode": entry.key, "level": level}
    info = {"status": "calibrated", "mode": entry.key, "level": level, "quantile": quantile,
            "calibration_slices": table[entry.key].get("slices"), "measured_acceleration": round(acceleration, 2),
            "matrix": matrix}
    notes = []
    if entry.matrix is not None and abs(math.log(matrix / entry.matrix)) > _MATRIX_TOLERANCE:
        notes.append(f"calibrated at a {entry.matrix}-pixel matrix, this scan is {matrix}; the coverage may differ "
                     "from the nominal level (calibrate on validation scans of this size)")
        info["matrix_mismatch"] = notes[-1]
    made_with = (calibration.get("sampler"), calibration.get("steps"))
    if sampling is not None and made_with[0] is not None and tuple(made_with) != tuple(sampling):
        notes.append(f"calibrated with {made_with[0]}-{made_with[1]}, this run used {sampling[0]}-{sampling[1]}; "
                     "the coverage may differ from the nominal level")
        info["setting_mismatch"] = notes[-1]
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return interval(mean, std, quantile, level, float(calibration.get("std_smoothing_px", 0.0))), info


@dataclass(frozen=True)
class Mode:
    """One reconstruction setting to calibrate."""

    multicoil: bool
    acceleration: int
    dc: str
    samples: int

    @property
    def key(self) -> str:
        """The table key without the matrix (:func:`mode_key`); :func:`calibrate_model` adds each data matrix."""
        return mode_key(self.multicoil, self.acceleration, self.dc, self.samples)

    def key_at(self, matrix: int) -> str:
        """The table key at a matrix size."""
        return mode_key(self.multicoil, self.acceleration, self.dc, self.samples, matrix)


def calibrate_model(rec: Reconstructor, files: dict[bool, list[Path]], modes: list[Mode], *,
                    steps: int | None = None, sampler: str | None = None,
                    levels: tuple[float, ...] = DEFAULT_LEVELS, seed: int = 0,
                    progress: bool = False) -> dict[str, Any]:
    """Reconstruct calibration scans in every mode and build the table for the model's metadata.

    Args:
        rec: the reconstructor (its model is the one being calibrated).
        files: fully sampled fastMRI-layout files with a target, per ``multicoil`` flag (e.g. the validation
            split's ``singlecoil_val`` and ``multicoil_val``); never test data. Slices of each matrix size get
            an entry of their own (key ``...:K4:256px``).
        modes: the settings to calibrate.
        steps: sampler steps used for calibration (recorded; intervals are for this setting); ``None``: the
            sampler's default, or the balanced preset's when ``sampler`` is ``None`` too.
        sampler: ``"ddim"``, ``"ddpm"`` or ``"dpmpp2m"``; ``None``: the balanced preset's (the command line's
            default setting, so that default reconstructions find their calibration).
        levels: nominal coverages to store.
        seed: seed of masks and sampling; slice ``i`` gets its own random mask (seed ``seed + i``), so the
            scores are exchangeable with those of new scans, whose masks differ too.
        progress: show progress bars.

    Returns:
        ``{"table": ..., "sampler": ..., "steps": ..., "files": [...], "region": ...}``.

    Raises:
        ValueError: if a mode has no calibration files.
    """
    opts = preset_options(Preset.BALANCED, sampler=sampler, steps=steps, progress=progress)
    all_scores: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for mode in modes:
        paths = files.get(mode.multicoil) or []
        if not paths:
            raise ValueError(f"no calibration files for {mode.key}")
        scans = [open_scan(p) for p in paths]
        data = [d for scan in scans for d in (read_slice(scan, s) for s in range(scan.num_slices))
                if d.target is not None]
        by_shape: dict[tuple[int, int], list[Any]] = {}
        for d in data:  # one entry per matrix: files of several sizes calibrate several entries
            by_shape.setdefault((int(d.kspace.shape[-2]), int(d.kspace.shape[-1])), []).append(d)
        for shape, group in sorted(by_shape.items()):
            kspace = np.stack([d.kspace for d in group])
            truth = np.stack([np.asarray(d.target) for d in group])
            masks = np.stack([make_mask(MaskSpec("random", mode.acceleration), shape, seed + i).numpy()
                              for i in range(len(group))])
            res = rec.reconstruct(kspace, masks, replace(opts, dc=DCMode(mode.dc), samples=mode.samples, seed=seed),
                                  multicoil=mode.multicoil)
            key = mode.key_at(matrix_of(shape))
            all_scores[key] = scores(truth, res.mean, res.std, smoothing=STD_SMOOTHING_PX)
            counts[key] = len(group)
    return {"table": build_table(all_scores, levels, counts), "sampler": opts.sampler.value,
            "steps": opts.make_sampler(rec.model.schedule).num_steps,
            "files": sorted({p.name for ps in files.values() for p in ps}),
            "region": f"object pixels (mean > {FOREGROUND:g} x its 99th percentile)",
            "eps": f"{EPS_FRACTION:g} x the mean's 99th percentile", "std_smoothing_px": STD_SMOOTHING_PX}

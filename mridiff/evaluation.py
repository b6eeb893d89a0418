"""fastMRI's volume-wise evaluation (``fastmri/evaluate.py``), runnable with NumPy 2: ``mridiff evaluate``.

``python -m fastmri.evaluate`` computes its metrics, then crashes when printing them with NumPy 2
(``TypeError: unsupported format string passed to numpy.ndarray.__format__``: its SSIM is a shape-(1,) array,
which NumPy 2 no longer formats as a number). This module does what its ``evaluate()`` does, with the same
functions (through :mod:`mridiff.metrics`) and the same running statistics (``runstats``, sample standard
deviation), and reports plain floats. Each volume's numbers are fastMRI's exactly; the mean and standard deviation
are accumulated in double precision (fastMRI's running mean of the float32 MSE stays float32 under NumPy 2), so
they agree with fastMRI's to float32 precision:

* every ``*.h5`` file of the target folder is paired with the file of the same name in the predictions folder
  (fastMRI's submission layout: a ``reconstruction`` dataset (S, h, w));
* the target is ``reconstruction_rss`` for the multi-coil challenge and ``reconstruction_esc`` for single-coil
  (without ``--challenge``: from the k-space layout, or the only target the file holds);
* ``--acquisition`` / ``--acceleration`` keep only the volumes whose attributes match, as fastMRI's flags;
* both volumes are centre-cropped to the target's (W, W) square (to min(H, W) for wide images, where fastMRI's crop
  fails; see :func:`mridiff.metrics.metrics_crop_size`), and MSE, NMSE, PSNR and SSIM are computed per volume;
* the summary is the mean and the sample standard deviation over volumes; fastMRI prints ``mean +/- 2 sd``.

Targets and predictions are read with the same care as scans: only data stored inside the file (no external
links, external storage or virtual datasets), a size limit before anything is read, finite values.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mridiff.data.fastmri_h5 import TARGET_KEYS, stored_dataset
from mridiff.errors import InputError
from mridiff.metrics import fastmri_metrics

METRICS = ("MSE", "NMSE", "PSNR", "SSIM")
CHALLENGE_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}
MAX_VOLUME_BYTES = 4 * 2**30  # a volume read whole for evaluation (fastMRI volumes are tens of MB)
_RECOPY = "copy or export the file again"


@dataclass
class VolumeScore:
    """The metrics of one volume."""

    file: str
    target_key: str
    metrics: dict[str, float]


@dataclass
class Evaluation:
    """Per-volume metrics and their summary, as ``fastmri.evaluate.Metrics`` keeps them."""

    volumes: list[VolumeScore] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def _stats(self, name: str) -> Any:
        from runstats import Statistics  # fastMRI's own running statistics

        return Statistics([v.metrics[name] for v in self.volumes])

    def means(self) -> dict[str, float]:
        """Mean of each metric over the volumes (NaN without volumes)."""
        return {m: float(self._stats(m).mean()) if self.volumes else math.nan for m in METRICS}

    def stddevs(self) -> dict[str, float]:
        """Sample standard deviation (``ddof=1``, as fastMRI) of each metric; NaN for fewer than two volumes."""
        return {m: float(self._stats(m).stddev()) if len(self.volumes) > 1 else math.nan for m in METRICS}

    def report(self) -> str:
        """The summary line fastMRI prints: ``NAME = mean +/- 2*sd`` for each metric, names sorted."""
        means, sds = self.means(), self.stddevs()
        return " ".join(f"{m} = {means[m]:.4g} +/- {2 * sds[m]:.4g}" for m in sorted(METRICS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every volume, the means and standard deviations, and the files left out by the filters."""
        return {"volumes": [{"file": v.file, "target": v.target_key, **v.metrics} for v in self.volumes],
                "mean": self.means(), "sd": self.stddevs(), "count": len(self.volumes), "skipped": self.skipped}


def _open(path: Path) -> h5py.File:
    try:
        if not h5py.is_hdf5(path):
            raise InputError(path, "not an HDF5 file", "expected a fastMRI-layout .h5 file")
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"HDF5 file is truncated or corrupt ({str(exc)[:160]})", _RECOPY) from None


def _volume(path: Path, hf: h5py.File, key: str) -> np.ndarray:
    """A float (S, h, w) dataset read whole, after its link, storage, shape and size were checked."""
    ds = stored_dataset(path, hf, key)
    if not isinstance(ds, h5py.Dataset):
        raise InputError(path, f"no '{key}' dataset", f"found: {', '.join(sorted(map(str, hf.keys()))) or 'nothing'}")
    if ds.ndim != 3 or ds.dtype.kind != "f" or min(ds.shape) < 1:
        raise InputError(path, f"'{key}' must be a real float (slices, h, w) volume, got {ds.dtype} {ds.shape}",
                         "targets are fastMRI files, predictions fastMRI submission files")
    if ds.size * ds.dtype.itemsize > MAX_VOLUME_BYTES:
        raise InputError(path, f"'{key}' declares {ds.shape} ({ds.size * ds.dtype.itemsize / 2**30:.1f} GiB), over "
                         f"the {MAX_VOLUME_BYTES // 2**30} GiB limit for one volume", "check the file")
    try:
        arr = np.asarray(ds[()])
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(path, f"cannot read '{key}': file truncated or corrupt ({str(exc)[:160]})", _RECOPY) from None
    if min(arr.shape[-2:]) < 7:
        raise InputError(path, f"'{key}' slices are {arr.shape[-2:]}; SSIM needs at least 7 x 7 pixels",
                         "check the file")
    if not np.all(np.isfinite(arr)):
        raise InputError(path, f"'{key}' contains NaN or Inf", "the file is damaged; write it again")
    return arr


def _target_key(path: Path, hf: h5py.File, challenge: str | None) -> str:
    if challenge is not None:
        return CHALLENGE_KEYS[challenge]
    present = [k for k in TARGET_KEYS if hf.id.links.exists(k.encode())]
    if hf.id.links.exists(b"kspace"):
        ks = stored_dataset(path, hf, "kspace")
        if isinstance(ks, h5py.Dataset) and ks.ndim in (3, 4):
            return CHALLENGE_KEYS["multicoil" if ks.ndim == 4 else "singlecoil"]
    if len(present) == 1:
        return present[0]
    if not present:
        raise InputError(path, "holds no target (reconstruction_rss or reconstruction_esc)",
                         "pass the fully sampled validation files as --target-path")
    raise InputError(path, "holds both reconstruction_rss and reconstruction_esc and no k-space to tell which",
                     "pass --challenge singlecoil or multicoil")


def _matches(hf: h5py.File, name: str, wanted: Any) -> bool:
    """Whether attribute ``name`` equals ``wanted`` (a missing or unreadable attribute does not match)."""
    try:
        value = hf.attrs[name]
    except (KeyError, OSError, TypeError):
        return False
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    try:
        return bool(value == wanted)
    except (TypeError, ValueError):
        return False


def evaluate(target_path: str | os.PathLike[str], predictions_path: str | os.PathLike[str],
             challenge: str | None = None, acquisition: str | None = None,
             acceleration: int | None = None) -> Evaluation:
    """Evaluate every prediction against its target, volume by volume, as ``fastmri/evaluate.py`` does.

    Args:
        target_path: Folder of fully sampled files with ``reconstruction_rss`` / ``reconstruction_esc``.
        predictions_path: Folder of submission files (same names) with a ``reconstruction`` dataset.
        challenge: ``"singlecoil"`` or ``"multicoil"`` (which target); ``None`` decides per file.
        acquisition: Keep only targets whose ``acquisition`` attribute equals this.
        acceleration: Keep only targets whose ``acceleration`` attribute equals this.

    Returns:
        The per-volume metrics and their summary.

    Raises:
        InputError: For a missing folder, no target files, a target without its prediction, unreadable or
            mismatching volumes, or no volume left after the filters.

    """
    if challenge is not None and challenge not in CHALLENGE_KEYS:
        raise InputError(None, f"unknown challenge {challenge!r}", "use singlecoil or multicoil")
    targets_dir, preds_dir = Path(target_path), Path(predictions_path)
    for d, what in ((targets_dir, "target"), (preds_dir, "predictions")):
        if not d.is_dir():
            raise InputError(d, f"{what} folder not found", "check --target-path and --predictions-path")
    targets = sorted(targets_dir.glob("*.h5"))
    if not targets:
        raise InputError(targets_dir, "holds no .h5 target files", "pass the folder of fully sampled files")
    result = Evaluation()
    for tgt_path in targets:
        with _open(tgt_path) as tgt:
            if (acquisition is not None and not _matches(tgt, "acquisition", acquisition)) or (
                    acceleration is not None and not _matches(tgt, "acceleration", acceleration)):
                result.skipped.append(tgt_path.name)
                continue
            key = _target_key(tgt_path, tgt, challenge)
            target = _volume(tgt_path, tgt, key)
        pred_path = preds_dir / tgt_path.name
        if not pred_path.is_file():
            raise InputError(pred_path, f"no prediction for target {tgt_path.name}",
                             "every target needs a submission file of the same name")
        with _open(pred_path) as pred_file:
            pred = _volume(pred_path, pred_file, "reconstruction")
        if pred.shape[0] != target.shape[0]:
            raise InputError(pred_path, f"has {pred.shape[0]} slices but the target has {target.shape[0]}",
                             "a submission file holds every slice of its volume")
        try:
            scores = fastmri_metrics(target, pred)
        except ValueError:
            side = min(target.shape[-2:])
            raise InputError(pred_path, f"reconstruction {pred.shape[1:]} is smaller than the evaluated central "
                             f"{side} x {side} square of the target",
                             "write reconstructions at the target's size, as fastMRI submissions") from None
        result.volumes.append(VolumeScore(tgt_path.name, key, scores))
    if not result.volumes:
        raise InputError(targets_dir, "no target matches --acquisition / --acceleration",
                         "check the filters against the files' attributes")
    return result

"""Image-quality metrics exactly as ``fastmri.evaluate`` computes them, plus uncertainty calibration.

NMSE and PSNR are per volume (PSNR with data_range = the volume's max); SSIM is per slice with the volume's
max as data_range, averaged over slices. Arrays are magnitude volumes (S, H, W), centre-cropped to (W, W)
as ``fastmri/evaluate.py`` does before comparison.
"""

from __future__ import annotations

import numpy as np
from fastmri import evaluate as fm_eval
from fastmri.data.transforms import center_crop
from scipy.stats import spearmanr


def _as_volume(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)  # no dtype change: results must equal fastmri.evaluate on the same arrays
    return arr[None] if arr.ndim == 2 else arr


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """||gt - pred||^2 / ||gt||^2 over the whole volume (fastmri.evaluate.nmse)."""
    return float(fm_eval.nmse(_as_volume(gt), _as_volume(pred)))


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """PSNR with data_range = gt.max() unless ``maxval`` is given (fastmri.evaluate.psnr)."""
    return float(fm_eval.psnr(_as_volume(gt), _as_volume(pred), maxval))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean per-slice SSIM with the volume max as data range (fastmri.evaluate.ssim returns shape (1,))."""
    return float(np.asarray(fm_eval.ssim(_as_volume(gt), _as_volume(pred), maxval)).reshape(-1)[0])


def crop_like_fastmri(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop both volumes to (W, W), W the target's width, as fastmri/evaluate.py does."""
    gt_v, pred_v = _as_volume(gt), _as_volume(pred)
    size = (gt_v.shape[-1], gt_v.shape[-1])
    return center_crop(gt_v, size), center_crop(pred_v, size)


def volume_metrics(gt: np.ndarray, pred: np.ndarray, crop: bool = True) -> dict[str, float]:
    """NMSE, PSNR and SSIM of one magnitude volume (S, H, W), cropped like fastmri/evaluate.py."""
    if crop:
        gt, pred = crop_like_fastmri(gt, pred)
    return {"NMSE": nmse(gt, pred), "PSNR": psnr(gt, pred), "SSIM": ssim(gt, pred)}


def uncertainty_calibration(gt: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Spearman correlation between the std map and |error|, and the fraction of pixels with |error| <= 2 std.

    Args:
        gt: target magnitude (H, W) or (S, H, W).
        mean: mean reconstruction, same shape.
        std: per-pixel standard deviation over samples, same shape.

    """
    err = np.abs(np.asarray(gt, dtype=np.float64) - np.asarray(mean, dtype=np.float64)).ravel()
    sd = np.asarray(std, dtype=np.float64).ravel()
    rho = float(spearmanr(sd, err).statistic) if sd.std() > 0 and err.std() > 0 else float("nan")
    return {"spearman": rho, "coverage_2sigma": float(np.mean(err <= 2 * sd))}

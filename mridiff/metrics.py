"""Image-quality metrics exactly as ``fastmri.evaluate`` computes them, plus uncertainty calibration.

NMSE and PSNR are per volume (PSNR with data_range = the volume's max); SSIM is per slice with the volume's
max as data_range, averaged over slices. Arrays are magnitude volumes (S, H, W), centre-cropped to a square of
side min(H, W) before comparison: for H >= W that is exactly the (W, W) crop of ``fastmri/evaluate.py``; for wide
images (W > H), where fastMRI's crop fails, it is the same rule ("score the central square") turned around.
"""

from __future__ import annotations

import numpy as np
from fastmri import evaluate as fm_eval
from fastmri.data.transforms import center_crop
from scipy.stats import spearmanr


def _as_volume(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)  # no dtype change: results must equal fastmri.evaluate on the same arrays
    return arr[None] if arr.ndim == 2 else arr


def mse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error over the whole volume (fastmri.evaluate.mse)."""
    return float(fm_eval.mse(_as_volume(gt), _as_volume(pred)))


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """||gt - pred||^2 / ||gt||^2 over the whole volume (fastmri.evaluate.nmse)."""
    return float(fm_eval.nmse(_as_volume(gt), _as_volume(pred)))


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """PSNR with data_range = gt.max() unless ``maxval`` is given (fastmri.evaluate.psnr)."""
    return float(fm_eval.psnr(_as_volume(gt), _as_volume(pred), maxval))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean per-slice SSIM with the volume max as data range (fastmri.evaluate.ssim returns shape (1,))."""
    return float(np.asarray(fm_eval.ssim(_as_volume(gt), _as_volume(pred), maxval)).reshape(-1)[0])


def metrics_crop_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """The square the metrics are computed on for images of ``shape`` (..., H, W): side min(H, W).

    fastmri/evaluate.py crops the target to (W, W), which only works when H >= W (fastMRI's knee and brain
    reconstructions are 320 x 320 or taller than wide). Taking min(H, W) gives fastMRI's exact crop whenever
    fastMRI's own crop is defined, so the numbers stay comparable with ``fastmri.evaluate``, and for wide images
    (W > H, e.g. a 180 x 230 brain matrix) it scores the central H x H square instead of failing; the dropped
    columns at the left and right edges are mostly background, as the rows fastMRI drops are for tall images.
    """
    side = int(min(shape[-2], shape[-1]))
    return side, side


def crop_like_fastmri(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop both volumes to the target's central min(H, W) square (fastmri/evaluate.py's (W, W) if H >= W).

    Raises:
        ValueError: If the prediction is smaller than that square.

    """
    gt_v, pred_v = _as_volume(gt), _as_volume(pred)
    size = metrics_crop_size(gt_v.shape)
    return center_crop(gt_v, size), center_crop(pred_v, size)


def volume_metrics(gt: np.ndarray, pred: np.ndarray, crop: bool = True) -> dict[str, float]:
    """NMSE, PSNR and SSIM of one magnitude volume (S, H, W), cropped as :func:`crop_like_fastmri` (any H x W)."""
    if crop:
        gt, pred = crop_like_fastmri(gt, pred)
    return {"NMSE": nmse(gt, pred), "PSNR": psnr(gt, pred), "SSIM": ssim(gt, pred)}


def fastmri_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, NMSE, PSNR and SSIM of one volume as ``fastmri/evaluate.py`` computes them (all four of its metrics).

    Both volumes are cropped as :func:`crop_like_fastmri` (fastMRI's (W, W) crop of the target whenever it is
    defined) and keep their stored dtype, so the numbers equal fastMRI's own for the same arrays.

    Raises:
        ValueError: If the prediction is smaller than the evaluated square.

    """
    gt_c, pred_c = crop_like_fastmri(gt, pred)
    return {"MSE": mse(gt_c, pred_c), "NMSE": nmse(gt_c, pred_c), "PSNR": psnr(gt_c, pred_c),
            "SSIM": ssim(gt_c, pred_c)}


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


def box_metrics(gt: np.ndarray, pred: np.ndarray, boxes: list[list[int] | None], min_side: int = 16,
                maxval: float | None = None) -> dict[str, float]:
    """PSNR and SSIM inside a box per slice (e.g. a tumour), for lesion fidelity beside the whole-image figures.

    PSNR pools the squared error of all box pixels of the volume; SSIM is the mean over slices of skimage's SSIM
    on each box. Both use ``maxval`` (default: the max of the whole target volume, as fastmri.evaluate), so that
    box and whole-image figures are on one scale. Boxes smaller than ``min_side`` are grown about their centre
    (clipped to the image) so SSIM's 7x7 window fits.

    Args:
        gt: target magnitudes (S, H, W).
        pred: predictions (S, H, W).
        boxes: per slice ``[row0, col0, row1, col1]`` (end-exclusive) or ``None`` to skip the slice.
        min_side: smallest box side used.
        maxval: data range; the target volume's max by default.

    Returns:
        ``{"box_PSNR", "box_SSIM", "box_slices"}`` (NaN figures when no slice has a box).
    """
    from skimage.metrics import structural_similarity

    gt_v, pred_v = _as_volume(gt), _as_volume(pred)
    rng = float(gt_v.max()) if maxval is None else float(maxval)
    sq_err, count, ssims = 0.0, 0, []
    for g, p, box in zip(gt_v, pred_v, boxes, strict=True):
        if box is None:
            continue
        r0, c0, r1, c1 = grow_box(box, min_side, g.shape)
        gb, pb = g[r0:r1, c0:c1].astype(np.float64), p[r0:r1, c0:c1].astype(np.float64)
        sq_err += float(np.sum((gb - pb) ** 2))
        count += gb.size
        ssims.append(float(structural_similarity(gb, pb, data_range=rng)))
    if not count:
        return {"box_PSNR": float("nan"), "box_SSIM": float("nan"), "box_slices": 0}
    mse = sq_err / count
    value = float("inf") if mse == 0 else float(10 * np.log10(rng**2 / mse))
    return {"box_PSNR": value, "box_SSIM": float(np.mean(ssims)), "box_slices": len(ssims)}


def grow_box(box: list[int], min_side: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``box`` grown about its centre to at least ``min_side`` on each side, inside an image of ``shape``."""
    r0, c0, r1, c1 = (int(v) for v in box)
    h, w = int(shape[-2]), int(shape[-1])
    if r1 - r0 < min_side:
        mid = (r0 + r1) // 2
        r0 = max(0, min(mid - min_side // 2, h - min_side))
        r1 = min(h, r0 + min_side)
    if c1 - c0 < min_side:
        mid = (c0 + c1) // 2
        c0 = max(0, min(mid - min_side // 2, w - min_side))
        c1 = min(w, c0 + min_side)
    return r0, c0, r1, c1

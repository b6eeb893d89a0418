import numpy as np
from fastmri import evaluate as fm_eval
from fastmri.data.transforms import center_crop

from mridiff.metrics import crop_like_fastmri, nmse, psnr, ssim, uncertainty_calibration, volume_metrics


def _volumes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.random((3, 40, 32)).astype(np.float32) * 5
    return gt, gt + rng.normal(0, 0.3, gt.shape).astype(np.float32)


def test_metrics_equal_fastmri_evaluate() -> None:
    gt, pred = _volumes()
    assert nmse(gt, pred) == float(fm_eval.nmse(gt, pred))
    assert psnr(gt, pred) == float(fm_eval.psnr(gt, pred))
    ref = fm_eval.ssim(gt, pred)
    assert ref.shape == (1,)  # fastmri 0.3.0 returns a shape-(1,) array; ours is a float
    assert ssim(gt, pred) == float(ref[0])


def test_crop_is_fastmri_evaluate_crop() -> None:
    gt, pred = _volumes(1)
    g, p = crop_like_fastmri(gt, pred)
    assert g.shape == (3, 32, 32)
    assert np.array_equal(g, center_crop(gt, (32, 32))) and np.array_equal(p, center_crop(pred, (32, 32)))
    out = volume_metrics(gt, pred)
    assert out["PSNR"] == float(fm_eval.psnr(center_crop(gt, (32, 32)), center_crop(pred, (32, 32))))


def test_uncertainty_calibration_detects_informative_std() -> None:
    rng = np.random.default_rng(0)
    gt = np.zeros((64, 64))
    sd = rng.uniform(0.1, 2.0, gt.shape)
    mean = gt + rng.normal(0, 1, gt.shape) * sd
    good = uncertainty_calibration(gt, mean, sd)
    assert good["spearman"] > 0.3 and 0.9 < good["coverage_2sigma"] <= 1.0
    bad = uncertainty_calibration(gt, mean, rng.permutation(sd.ravel()).reshape(sd.shape))
    assert abs(bad["spearman"]) < 0.1


def test_box_metrics_only_see_the_box() -> None:
    from mridiff.metrics import box_metrics, grow_box

    rng = np.random.default_rng(0)
    gt = rng.random((2, 40, 40)).astype(np.float32)
    pred = gt.copy()
    pred[:, :, 30:] += 0.5  # error outside the boxes
    boxes: list[list[int] | None] = [[5, 5, 25, 25], None]
    m = box_metrics(gt, pred, boxes)
    assert m["box_PSNR"] == float("inf") and m["box_SSIM"] == 1.0 and m["box_slices"] == 1
    pred[0, 10, 10] += 0.1
    m = box_metrics(gt, pred, boxes)
    expected = 10 * np.log10(float(gt.max()) ** 2 / (0.1**2 / 400))
    assert abs(m["box_PSNR"] - expected) < 1e-3 and m["box_SSIM"] < 1.0
    assert np.isnan(box_metrics(gt, pred, [None, None])["box_PSNR"])
    assert grow_box([10, 10, 12, 12], 16, (40, 40)) == (3, 3, 19, 19)
    assert grow_box([0, 36, 2, 40], 16, (40, 40)) == (0, 24, 16, 40)


def test_wide_images_are_scored_on_their_central_square() -> None:
    """fastMRI's (W, W) crop fails for W > H; the central min(H, W) square is used instead (same rule, turned)."""
    rng = np.random.default_rng(2)
    gt = rng.random((2, 18, 23)).astype(np.float32)
    pred = gt + rng.normal(0, 0.1, gt.shape).astype(np.float32)
    g, p = crop_like_fastmri(gt, pred)
    assert g.shape == p.shape == (2, 18, 18)
    assert np.array_equal(g, gt[:, :, 2:20]) and np.array_equal(p, pred[:, :, 2:20])
    out = volume_metrics(gt, pred)
    assert out["PSNR"] == float(fm_eval.psnr(gt[:, :, 2:20], pred[:, :, 2:20]))
    assert out["SSIM"] == float(fm_eval.ssim(gt[:, :, 2:20], pred[:, :, 2:20])[0])

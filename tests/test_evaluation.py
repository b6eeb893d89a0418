"""``mridiff.evaluation`` gives fastmri/evaluate.py's numbers (issue 14 item 8)."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri import evaluate as fm_eval
from fastmri.data import transforms as fm_transforms

from mridiff.errors import InputError
from mridiff.evaluation import evaluate


def _pair(root: Path, name: str, shape: tuple[int, int, int], seed: int, multicoil: bool = False,
          acquisition: str = "AXT1", prediction: bool = True) -> None:
    """A target (k-space layout + reconstruction_rss/esc + attrs) and a noisy prediction of it."""
    rng = np.random.default_rng(seed)
    s, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    target = np.stack([np.exp(-((yy - h / 2) ** 2 + (xx - w / 2 - i) ** 2) / (0.1 * h * w)) * (1 + 0.2 * i)
                       for i in range(s)]).astype(np.float32)
    (root / "targets").mkdir(exist_ok=True)
    (root / "preds").mkdir(exist_ok=True)
    with h5py.File(root / "targets" / name, "w") as fh:
        kshape = (s, 2, h, w) if multicoil else (s, h, w)
        fh.create_dataset("kspace", data=np.ones(kshape, np.complex64))
        fh.create_dataset("reconstruction_rss", data=target)
        if not multicoil:  # single-coil fastMRI files hold both targets
            fh.create_dataset("reconstruction_esc", data=target * 0.9)
        fh.attrs["acquisition"] = acquisition
        fh.attrs["acceleration"] = 4
    if prediction:
        noisy = target * 0.95 + rng.normal(scale=0.03, size=target.shape).astype(np.float32)
        with h5py.File(root / "preds" / name, "w") as fh:
            fh.create_dataset("reconstruction", data=np.abs(noisy).astype(np.float32))


def _fastmri(root: Path, key: str, acquisition: str | None = None) -> fm_eval.Metrics:
    args = argparse.Namespace(target_path=root / "targets", predictions_path=root / "preds",
                              acquisition=acquisition, acceleration=None)
    return fm_eval.evaluate(args, key)


@pytest.mark.parametrize("challenge", ["singlecoil", "multicoil"])
def test_same_numbers_as_fastmri_evaluate(tmp_path: Path, challenge: str) -> None:
    multi = challenge == "multicoil"
    for i, shape in enumerate([(3, 40, 32), (2, 36, 36), (4, 48, 32)]):  # tall and square: fastMRI's crop works
        _pair(tmp_path, f"file{i}.h5", shape, i, multicoil=multi)
    theirs = _fastmri(tmp_path, "reconstruction_rss" if multi else "reconstruction_esc")
    with pytest.raises(TypeError, match="unsupported format string"):  # why mridiff evaluate exists (numpy 2)
        repr(theirs)
    ours = evaluate(tmp_path / "targets", tmp_path / "preds", challenge)
    auto = evaluate(tmp_path / "targets", tmp_path / "preds")  # the challenge from the k-space layout
    key = "reconstruction_rss" if multi else "reconstruction_esc"
    for volume in ours.volumes:  # each volume's numbers are fastMRI's, exactly
        with h5py.File(tmp_path / "targets" / volume.file) as t, h5py.File(tmp_path / "preds" / volume.file) as p:
            target, recons = t[key][()], p["reconstruction"][()]
        target = fm_transforms.center_crop(target, (target.shape[-1], target.shape[-1]))
        recons = fm_transforms.center_crop(recons, (target.shape[-1], target.shape[-1]))
        for name, func in fm_eval.METRIC_FUNCS.items():
            assert volume.metrics[name] == float(np.ravel(func(target, recons))[0]), name
    for name in ("MSE", "NMSE", "PSNR", "SSIM"):
        # fastMRI's running mean of MSE stays in float32 under NumPy 2 (float32 - Python float is float32), ours is
        # accumulated in double: the summaries agree to float32 precision.
        assert ours.means()[name] == pytest.approx(float(np.ravel(theirs.means()[name])[0]), rel=1e-6, abs=0)
        assert ours.stddevs()[name] == pytest.approx(float(np.ravel(theirs.stddevs()[name])[0]), rel=1e-5, abs=0)
        assert auto.means()[name] == ours.means()[name]
    assert len(ours.volumes) == 3 and {v.target_key for v in ours.volumes} == {
        "reconstruction_rss" if multi else "reconstruction_esc"}
    assert ours.report().startswith("MSE = ") and " +/- " in ours.report()


def test_acquisition_filter_as_fastmri(tmp_path: Path) -> None:
    _pair(tmp_path, "a.h5", (2, 32, 32), 0, acquisition="AXT1")
    _pair(tmp_path, "b.h5", (2, 32, 32), 1, acquisition="AXT2")
    _pair(tmp_path, "c.h5", (2, 32, 32), 2, acquisition="AXT1")
    theirs = _fastmri(tmp_path, "reconstruction_esc", acquisition="AXT1")
    ours = evaluate(tmp_path / "targets", tmp_path / "preds", "singlecoil", acquisition="AXT1")
    assert [v.file for v in ours.volumes] == ["a.h5", "c.h5"] and ours.skipped == ["b.h5"]
    assert ours.means()["PSNR"] == pytest.approx(float(theirs.means()["PSNR"]), rel=1e-12)


def test_wide_volumes_are_evaluated_on_their_central_square(tmp_path: Path) -> None:
    _pair(tmp_path, "wide.h5", (2, 32, 48), 0)  # fastMRI's (W, W) crop fails here
    with pytest.raises(ValueError):
        _fastmri(tmp_path, "reconstruction_esc")
    ours = evaluate(tmp_path / "targets", tmp_path / "preds", "singlecoil")
    with h5py.File(tmp_path / "targets" / "wide.h5") as t, h5py.File(tmp_path / "preds" / "wide.h5") as p:
        gt, pred = t["reconstruction_esc"][:, :, 8:40], p["reconstruction"][:, :, 8:40]
    assert ours.volumes[0].metrics["PSNR"] == pytest.approx(float(fm_eval.psnr(gt, pred)))
    assert np.isnan(ours.stddevs()["PSNR"])  # one volume: no spread (fastMRI divides by zero)


@pytest.mark.parametrize("problem", ["no_prediction", "slices", "smaller", "nan", "no_targets", "both_targets"])
def test_bad_folders_are_one_line_errors(tmp_path: Path, problem: str) -> None:
    _pair(tmp_path, "a.h5", (2, 32, 32), 0, prediction=problem != "no_prediction")
    pred = tmp_path / "preds" / "a.h5"
    if problem in ("slices", "smaller", "nan"):
        data = {"slices": np.ones((3, 32, 32)), "smaller": np.ones((2, 20, 20)),
                "nan": np.full((2, 32, 32), np.nan)}[problem]
        with h5py.File(pred, "w") as fh:
            fh.create_dataset("reconstruction", data=data.astype(np.float32))
    if problem == "no_targets":
        (tmp_path / "targets" / "a.h5").unlink()
    if problem == "both_targets":
        with h5py.File(tmp_path / "targets" / "a.h5", "a") as fh:
            del fh["kspace"]
    with pytest.raises(InputError) as caught:
        evaluate(tmp_path / "targets", tmp_path / "preds")
    message = caught.value.message()
    assert "\n" not in message
    needle = {"no_prediction": "no prediction for target a.h5", "slices": "has 3 slices but the target has 2",
              "smaller": "smaller than the evaluated central 32 x 32", "nan": "contains NaN or Inf",
              "no_targets": "holds no .h5 target files", "both_targets": "pass --challenge"}[problem]
    assert needle in message


def test_external_storage_in_a_prediction_is_refused(tmp_path: Path) -> None:
    _pair(tmp_path, "a.h5", (2, 32, 32), 0, prediction=False)
    raw = tmp_path / "secret.raw"
    raw.write_bytes(np.ones((2, 32, 32), np.float32).tobytes())
    with h5py.File(tmp_path / "preds" / "a.h5", "w") as fh:
        fh.create_dataset("reconstruction", shape=(2, 32, 32), dtype=np.float32, external=[(str(raw), 0, 8192)])
    with pytest.raises(InputError, match="external raw files"):
        evaluate(tmp_path / "targets", tmp_path / "preds")

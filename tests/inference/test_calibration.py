"""Split conformal calibration of the per-pixel std: nominal coverage on exchangeable data, and not otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mridiff.inference.calibration import (
    build_table,
    calibrated_interval,
    conformal_quantile,
    coverage,
    foreground,
    interval,
    lookup,
    mode_key,
    risk_score,
    scores,
)


def synthetic(rng: np.random.Generator, n: int, error_scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Slices whose truth deviates from the mean by error_scale x std x a t-distributed (heavy-tailed) variable."""
    mean = rng.uniform(0.5, 1.0, (n, 32, 32))
    std = rng.uniform(0.02, 0.2, (n, 32, 32))
    truth = mean + error_scale * std * rng.standard_t(5, size=mean.shape)
    return truth, mean, std


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_conformal_quantile_gives_nominal_coverage_on_exchangeable_data(level: float) -> None:
    rng = np.random.default_rng(0)
    truth, mean, std = synthetic(rng, 20)
    q = conformal_quantile(scores(truth, mean, std), level)
    t2, m2, s2 = synthetic(rng, 20)
    iv = interval(m2, s2, q, level)
    observed = coverage(t2, iv.lower, iv.upper, foreground(m2))
    n = t2.size
    assert abs(observed - level) < 4 * np.sqrt(level * (1 - level) / n) + 1e-3


def test_coverage_fails_when_test_errors_are_larger_than_calibration() -> None:
    rng = np.random.default_rng(1)
    truth, mean, std = synthetic(rng, 10)
    q = conformal_quantile(scores(truth, mean, std), 0.9)
    t2, m2, s2 = synthetic(rng, 10, error_scale=2.0)
    iv = interval(m2, s2, q, 0.9)
    assert coverage(t2, iv.lower, iv.upper, foreground(m2)) < 0.75


def test_quantile_rank_and_errors() -> None:
    vals = np.arange(1, 11, dtype=float)  # n = 10
    assert conformal_quantile(vals, 0.5) == 6.0  # ceil(11 * 0.5) = 6th smallest
    assert conformal_quantile(vals, 0.95) == float("inf")  # ceil(11 * 0.95) = 11 > n
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        conformal_quantile(vals, 1.0)
    with pytest.raises(ValueError, match="no calibration scores"):
        conformal_quantile(np.array([]), 0.9)


def test_table_lookup_and_mode_keys() -> None:
    rng = np.random.default_rng(2)
    truth, mean, std = synthetic(rng, 2)
    key = mode_key(False, 4, "hard", 4)
    assert key == "singlecoil:4x:hard:K4"
    assert mode_key(True, None, "soft", 2) == "multicoil:unknown:soft:K2"
    assert mode_key(False, 8, "hard", 4, 128) == "singlecoil:8x:hard:K4:128px"
    table = build_table({key: scores(truth, mean, std)}, levels=(0.9,), slices={key: 2})
    assert table[key]["slices"] == 2 and table[key]["pixels"] == truth.size
    assert lookup(table, key, 0.9) == table[key]["quantiles"]["0.9"]  # type: ignore[index]
    assert lookup(table, key, 0.8) is None and lookup(table, "multicoil:8x:hard:K4", 0.9) is None
    assert lookup(None, key, 0.9) is None


def test_entries_are_chosen_by_coil_dc_k_acceleration_and_nearest_matrix() -> None:
    from mridiff.inference.calibration import matrix_of, parse_key, select_entry

    table = {mode_key(False, 4, "hard", 4, 128): {}, mode_key(False, 4, "hard", 4, 256): {},
             mode_key(False, 8, "hard", 4, 256): {}, mode_key(True, 4, "hard", 4): {}, "not:a:key": {}}
    pick = select_entry  # (table, multicoil, measured acceleration, dc, K, matrix)
    assert pick(table, False, 4.2, "hard", 4, 128).key == "singlecoil:4x:hard:K4:128px"  # type: ignore[union-attr]
    assert pick(table, False, 3.7, "hard", 4, 320).key == "singlecoil:4x:hard:K4:256px"  # type: ignore[union-attr]
    assert pick(table, False, 7.5, "hard", 4, 128).key == "singlecoil:8x:hard:K4:256px"  # type: ignore[union-attr]
    assert pick(table, True, 4.0, "hard", 4, 64).key == "multicoil:4x:hard:K4"  # type: ignore[union-attr]
    assert pick(table, False, 4.0, "soft", 4, 128) is None and pick(table, False, 4.0, "hard", 2, 128) is None
    assert pick(table, False, 2.5, "hard", 4, 128) is None and pick(table, False, 12.0, "hard", 4, 128) is None
    assert pick(table, False, 4.0, "hard", 4, None).key.startswith("singlecoil:4x")  # type: ignore[union-attr]
    # a keyed matrix beats a four-part key; the four-part key still serves when nothing else matches
    both = {mode_key(False, 4, "hard", 4): {}, mode_key(False, 4, "hard", 4, 256): {}}
    assert pick(both, False, 4.0, "hard", 4, 512).key == "singlecoil:4x:hard:K4:256px"  # type: ignore[union-attr]
    assert parse_key("singlecoil:4x:hard:K4:128px").matrix == 128  # type: ignore[union-attr]
    assert parse_key("singlecoil:4x:hard:K4") is not None and parse_key("singlecoil:4x:hard:Kx") is None
    assert matrix_of((3, 128, 128)) == 128 and matrix_of((640, 320)) == 453


def test_the_interval_uses_the_entry_of_its_matrix_and_warns_far_from_any() -> None:
    rng = np.random.default_rng(5)
    t, m, s = synthetic(rng, 2)  # 32x32
    small = {"quantiles": {"0.9": 1.0}, "slices": 3}
    large = {"quantiles": {"0.9": 3.0}, "slices": 4}
    meta = {"calibration": {"table": {mode_key(False, 4, "hard", 4, 32): small,
                                      mode_key(False, 4, "hard", 4, 64): large}}}
    iv, info = calibrated_interval(meta, m, s, False, 4.0, "hard", 4, 0.9)
    assert info["mode"].endswith(":32px") and info["matrix"] == 32 and "matrix_mismatch" not in info
    np.testing.assert_allclose(iv.upper, interval(m, s, 1.0, 0.9).upper)  # type: ignore[union-attr]
    big = np.kron(m, np.ones((1, 2, 2)))  # 64x64
    iv, info = calibrated_interval(meta, big, np.kron(s, np.ones((1, 2, 2))), False, 4.0, "hard", 4, 0.9)
    assert info["mode"].endswith(":64px") and info["calibration_slices"] == 4
    huge = np.kron(m, np.ones((1, 4, 4)))  # 128x128: twice the nearest calibrated matrix
    with pytest.warns(UserWarning, match="calibrated at a 64-pixel matrix, this scan is 128"):
        iv, info = calibrated_interval(meta, huge, np.kron(s, np.ones((1, 4, 4))), False, 4.0, "hard", 4, 0.9)
    assert iv is not None and "matrix_mismatch" in info


def test_a_run_with_another_sampler_than_the_calibration_is_told_so() -> None:
    rng = np.random.default_rng(3)
    truth, mean, std = synthetic(rng, 2)
    key = mode_key(False, 4, "hard", 4)
    meta = {"calibration": {"sampler": "dpmpp2m", "steps": 10,
                            "table": build_table({key: scores(truth, mean, std)}, levels=(0.9,), slices={key: 2})}}
    _, same = calibrated_interval(meta, mean, std, False, 4.1, "hard", 4, 0.9, sampling=("dpmpp2m", 10))
    assert same["status"] == "calibrated" and "setting_mismatch" not in same
    with pytest.warns(UserWarning, match="calibrated with dpmpp2m-10, this run used ddim-50"):
        iv, other = calibrated_interval(meta, mean, std, False, 4.1, "hard", 4, 0.9, sampling=("ddim", 50))
    assert iv is not None and "ddim-50" in other["setting_mismatch"]


def test_smoothed_std_scores_and_intervals_agree() -> None:
    from scipy.ndimage import gaussian_filter

    from mridiff.inference.calibration import smooth_std

    rng = np.random.default_rng(4)
    truth, mean, std = synthetic(rng, 3)
    smoothed = np.stack([gaussian_filter(s, 1.5, mode="nearest") for s in std])
    np.testing.assert_allclose(smooth_std(std, 1.5), smoothed)  # in-plane only, slice by slice
    assert np.array_equal(smooth_std(std, 0.0), std)
    np.testing.assert_allclose(scores(truth, mean, std, smoothing=1.5), scores(truth, mean, smoothed))
    q = conformal_quantile(scores(truth, mean, std, smoothing=1.5), 0.9)
    np.testing.assert_allclose(interval(mean, std, q, 0.9, smoothing=1.5).upper,
                               interval(mean, smoothed, q, 0.9).upper)
    # a calibration table made with smoothing is applied with the same smoothing
    key = mode_key(False, 4, "hard", 4)
    meta = {"calibration": {"std_smoothing_px": 1.5,
                            "table": build_table({key: scores(truth, mean, std, smoothing=1.5)}, levels=(0.9,))}}
    iv, _ = calibrated_interval(meta, mean, std, False, 4.0, "hard", 4, 0.9)
    assert iv is not None
    np.testing.assert_allclose(iv.upper, interval(mean, smoothed, q, 0.9).upper)


def test_interval_is_non_negative_and_risk_grows_with_width() -> None:
    mean = np.zeros((1, 8, 8))
    mean[0, 2:6, 2:6] = 1.0
    std = np.full_like(mean, 0.01)
    narrow = interval(mean, std, 1.0, 0.9)
    assert (narrow.lower >= 0).all() and (narrow.upper >= mean).all()
    assert risk_score(narrow.std_calibrated, mean)[0] == 0.0
    wide = interval(mean, std * 50, 1.0, 0.9)
    assert risk_score(wide.std_calibrated, mean)[0] == 1.0


def test_calibrate_model_builds_a_table_from_validation_files(tiny_recon_model: Path,
                                                              tiny_dataset: dict[str, Path]) -> None:
    from mridiff.inference.calibration import Mode, calibrate_model
    from mridiff.inference.reconstruct import Reconstructor

    rec = Reconstructor(tiny_recon_model, device="cpu")
    files = {False: sorted(tiny_dataset["singlecoil"].glob("*.h5"))[:1]}
    out = calibrate_model(rec, files, [Mode(False, 4, "hard", 2)], steps=2, levels=(0.9,))
    entry = out["table"]["singlecoil:4x:hard:K2:32px"]  # the files are 32x32
    assert entry["slices"] >= 1 and entry["pixels"] > 0
    assert 0 < entry["quantiles"]["0.9"] < float("inf")
    assert out["steps"] == 2 and out["files"] == [files[False][0].name]
    with pytest.raises(ValueError, match="no calibration files"):
        calibrate_model(rec, files, [Mode(True, 4, "hard", 2)], steps=2)


def test_calibrate_command_and_calibrated_reconstruction(tiny_recon_model: Path, tiny_dataset: dict[str, Path],
                                                         tmp_path: Path) -> None:
    import json

    from mridiff.cli import main
    from mridiff.data.fastmri_h5 import open_scan, read_slice
    from mridiff.inference.reconstruct import Reconstructor
    from mridiff.physics.masks import MaskSpec, make_mask

    out = tmp_path / "calibrated.safetensors"
    assert main(["calibrate", "--model", str(tiny_recon_model), "--data", str(tiny_dataset["singlecoil"]),
                 "--out", str(out), "--accelerations", "4", "--dc", "hard", "--samples", "2", "--steps", "2",
                 "--no-progress"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert "singlecoil:4x:hard:K2:32px" in meta["calibration"]["table"]
    assert meta["sha256"] == json.loads(tiny_recon_model.with_suffix(".json").read_text())["sha256"]
    assert main(["calibrate", "--model", str(tiny_recon_model), "--data", str(tiny_dataset["singlecoil"]),
                 "--out", str(out), "--samples", "2"]) == 2  # exists, no --overwrite
    assert main(["calibrate", "--model", str(tiny_recon_model), "--out", str(tmp_path / "none.safetensors")]) == 2
    # calibrating the calibrated copy for another K adds its entries; another step count replaces the table
    more = tmp_path / "more.safetensors"
    common = ["--data", str(tiny_dataset["singlecoil"]), "--accelerations", "4", "--dc", "hard", "--samples", "3",
              "--no-progress"]
    assert main(["calibrate", "--model", str(out), *common, "--steps", "2", "--out", str(more)]) == 0
    table = json.loads(more.with_suffix(".json").read_text())["calibration"]["table"]
    assert set(table) == {"singlecoil:4x:hard:K2:32px", "singlecoil:4x:hard:K3:32px"}
    assert main(["calibrate", "--model", str(out), *common, "--steps", "3", "--out", str(more), "--overwrite"]) == 0
    table = json.loads(more.with_suffix(".json").read_text())["calibration"]["table"]
    assert set(table) == {"singlecoil:4x:hard:K3:32px"}

    path = sorted(tiny_dataset["singlecoil"].glob("*.h5"))[0]
    data = read_slice(open_scan(path), 2)
    mask = make_mask(MaskSpec("random", 4), data.kspace.shape[-2:], 0)
    res = Reconstructor(out, device="cpu").reconstruct(data.kspace, mask, samples=2, steps=2, coverage=0.9)
    assert res.interval is not None and res.calibration is not None
    assert res.calibration["status"] == "calibrated" and res.calibration["mode"] == "singlecoil:4x:hard:K2:32px"
    assert (res.interval.lower <= res.mean + 1e-6).all() and (res.interval.upper >= res.mean - 1e-6).all()
    with pytest.warns(UserWarning, match="no calibration entry"):
        plain = Reconstructor(tiny_recon_model, device="cpu").reconstruct(data.kspace, mask, samples=2, steps=2)
    assert plain.interval is None and plain.calibration is not None
    assert plain.calibration["status"] == "uncalibrated"
    one = Reconstructor(out, device="cpu").reconstruct(data.kspace, mask, samples=1, steps=2)
    assert one.interval is None and one.calibration is None


def test_reconstruct_writes_calibrated_intervals_and_says_when_uncalibrated(
        tiny_recon_model: Path, tiny_dataset: dict[str, Path], tmp_path: Path) -> None:
    import json

    import h5py

    from mridiff.cli import main

    model = tmp_path / "calibrated.safetensors"
    assert main(["calibrate", "--model", str(tiny_recon_model), "--data", str(tiny_dataset["singlecoil"]),
                 "--out", str(model), "--accelerations", "4", "--dc", "hard", "--samples", "2", "--steps", "2",
                 "--no-progress"]) == 0
    scan = sorted(tiny_dataset["singlecoil"].glob("*.h5"))[0]
    for name, ckpt in (("cal", model), ("plain", tiny_recon_model)):
        out = tmp_path / name
        assert main(["reconstruct", str(scan), "--ckpt", str(ckpt), "--out", str(out), "--samples", "2",
                     "--steps", "2", "--no-progress"]) == 0
        entry = json.loads((out / "metrics.json").read_text())["files"][0]
        with h5py.File(out / "reconstructions" / scan.name, "r") as fh:
            keys = set(fh.keys())
        if name == "cal":
            assert entry["calibration"]["status"] == "calibrated" and entry["calibration"]["level"] == 0.9
            assert len(entry["calibration"]["risk_per_slice"]) == entry["slices"]
            assert {"std_calibrated", "lower", "upper", "uncertainty"} <= keys
            # the interval as NIfTI too, equal to the submission file's, and the risk overlay panel
            import nibabel as nib
            stem = scan.name[:-3]
            with h5py.File(out / "reconstructions" / scan.name, "r") as fh:
                lower, upper, recon = fh["lower"][()], fh["upper"][()], fh["reconstruction"][()]
            nii_lower = np.asarray(nib.load(out / "nifti" / f"{stem}_lower.nii.gz").dataobj)
            nii_upper = np.asarray(nib.load(out / "nifti" / f"{stem}_upper.nii.gz").dataobj)
            nii_mean = np.asarray(nib.load(out / "nifti" / f"{stem}.nii.gz").dataobj)
            assert nii_lower.shape == nii_mean.shape and np.isclose(nii_lower.sum(), lower.sum(), rtol=1e-4)
            assert np.isclose(nii_upper.sum(), upper.sum(), rtol=1e-4) and (nii_lower <= nii_mean + 1e-6).all()
            assert (upper >= recon - 1e-6).all()
            assert (out / "nifti" / f"{stem}_std_calibrated.nii.gz").is_file()
            assert (out / "figures" / f"{stem}_risk.png").stat().st_size > 0
        else:
            assert entry["calibration"]["status"] == "uncalibrated"
            assert "std_calibrated" not in keys
            assert not list((out / "nifti").glob("*_lower.nii.gz"))
            assert not (out / "figures" / f"{scan.stem}_risk.png").exists()

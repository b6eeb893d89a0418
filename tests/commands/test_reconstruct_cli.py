from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import pytest
from fastmri import evaluate as fm_eval
from PIL import Image

from mridiff.cli import main


@pytest.fixture
def scan(tiny_dataset: dict[str, Path], tmp_path: Path) -> Path:
    src = next(tiny_dataset["singlecoil"].glob("*.h5"))
    target_dir = tmp_path / "targets"
    target_dir.mkdir()
    return Path(shutil.copy(src, target_dir / src.name))


def test_reconstruct_writes_all_outputs(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    before = scan.read_bytes()
    rc = main(["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--steps", "2", "--samples", "2",
               "--out", str(out), "--no-progress", "--batch-size", "2"])
    assert rc == 0, capsys.readouterr().err
    assert scan.read_bytes() == before  # input untouched
    sub = out / "reconstructions" / scan.name
    with h5py.File(sub, "r") as fh:
        recon = fh["reconstruction"][()]
        assert recon.dtype == np.float32 and "uncertainty" in fh
    with h5py.File(scan, "r") as fh:
        assert recon.shape == fh["reconstruction_esc"].shape
    stem = scan.stem
    img = nib.load(out / "nifti" / f"{stem}.nii.gz")
    assert img.shape == (recon.shape[2], recon.shape[1], recon.shape[0])
    assert np.allclose(np.asarray(img.dataobj).transpose(2, 1, 0), recon)
    assert nib.load(out / "nifti" / f"{stem}_std.nii.gz").shape == img.shape
    png = Image.open(out / "figures" / f"{stem}.png")
    assert png.size[0] == 5 * 32
    metrics = json.loads((out / "metrics.json").read_text())["files"][0]
    assert set(metrics["mridiff"]) == {"NMSE", "PSNR", "SSIM"} and "uncertainty" in metrics
    assert not list(out.rglob("*.part"))

    # fastMRI's own evaluation accepts the submission layout.
    args = argparse.Namespace(target_path=scan.parent, predictions_path=out / "reconstructions",
                              acquisition=None, acceleration=None)
    stats = fm_eval.evaluate(args, "reconstruction_esc")
    means = stats.means()
    assert abs(means["PSNR"] - metrics["mridiff"]["PSNR"]) < 1e-6
    assert abs(means["SSIM"] - metrics["mridiff"]["SSIM"]) < 1e-6


def test_existing_output_needs_overwrite(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--steps", "1", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert main([*argv, "--overwrite"]) == 0


def test_missing_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconstruct", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.h5" in err[0]


# ------------------------------------------------------------------------ issue 14: real files, nothing lost


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny recon model without attention: cheap at any matrix size (plumbing, not quality)."""
    import torch

    from mridiff.models.unet import ConditionalUNet, UNetConfig
    from mridiff.training.checkpoint import export_model
    from tests.helpers import tiny_meta

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), num_head_channels=8, norm_num_groups=4)
    path = tmp_path_factory.mktemp("flat") / "m.safetensors"
    return export_model(ConditionalUNet(cfg), tiny_meta("recon", cfg), path)


def _wide_multicoil(path: Path, write_h5: Any, size: tuple[int, int] = (180, 230), coils: int = 8,
                    slices: int = 2) -> Path:
    """A real-layout multi-coil scan: undersampled k-space (zeros where not measured), its own 2D mask,
    ``reconstruction_rss`` from the fully sampled data and a matching ismrmrd header."""
    from mridiff.data.simulate import ifft2c_np, simulate_kspace
    from tests.helpers import head_volume

    h, w = size
    rng = np.random.default_rng(0)
    vol = head_volume((h, w, slices), 0)
    mask = (rng.random((h, w)) < 0.25).astype(np.float32)  # a 2D (variable) mask with a fully sampled centre
    mask[h // 2 - 12 : h // 2 + 12, w // 2 - 12 : w // 2 + 12] = 1
    ks, rss = [], []
    for s in range(slices):
        full = simulate_kspace(vol[:, :, s], coils, rng, snr_db=30).kspace
        rss.append(np.sqrt((np.abs(ifft2c_np(full.astype(np.complex128))) ** 2).sum(0)))
        ks.append(full * mask)
    return write_h5(path, np.stack(ks).astype(np.complex64), target=np.stack(rss).astype(np.float32),
                    mask=mask, attrs={"acquisition": "AXT1", "max": float(np.max(rss))})


def _run(inputs: list[Path], model: Path, out: Path, *extra: str) -> int:
    return main(["reconstruct", *map(str, inputs), "--ckpt", str(model), "--steps", "1", "--device", "cpu",
                 "--out", str(out), "--no-progress", *extra])


def test_wide_multicoil_scan_with_its_own_2d_mask_gets_metrics(tmp_path: Path, flat_model: Path, data_helpers: Any,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    scan = _wide_multicoil(tmp_path / "wide.h5", data_helpers.write_h5)
    out = tmp_path / "out"
    rc = _run([scan], flat_model, out)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err and "note:" not in err  # the file's own mask: nothing retrospective to announce
    with h5py.File(out / "reconstructions" / "wide.h5", "r") as fh:
        recon = fh["reconstruction"][()]
    assert recon.shape == (2, 180, 230)
    entry = json.loads((out / "metrics.json").read_text())["files"][0]
    assert entry["mask"] == "file" and "metrics_error" not in entry
    with h5py.File(scan, "r") as fh:
        target = fh["reconstruction_rss"][()]
    side = (slice(None), slice(None), slice(25, 205))  # the central 180 x 180 square
    assert entry["mridiff"]["PSNR"] == pytest.approx(float(fm_eval.psnr(target[side], recon[side])))
    assert entry["mridiff"]["SSIM"] == pytest.approx(float(fm_eval.ssim(target[side], recon[side])[0]))


def test_failing_metrics_never_fail_a_finished_reconstruction(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mridiff.inference import recon_files

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Invalid shapes.")

    monkeypatch.setattr(recon_files, "volume_metrics", broken)
    out = tmp_path / "out"
    assert _run([scan], tiny_recon_model, out) == 0
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if "metrics could not be computed" in ln]
    assert len(warned) == 1 and warned[0].startswith("mridiff: warning: ") and "Traceback" not in err
    entry = json.loads((out / "metrics.json").read_text())["files"][0]
    assert entry["metrics_error"] == "ValueError: Invalid shapes." and "mridiff" not in entry
    assert (out / "reconstructions" / scan.name).is_file()


def test_one_sample_writes_no_std_map_and_a_note_comes_first(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run([scan], tiny_recon_model, out, "--samples", "2") == 0
    assert (out / "nifti" / f"{scan.stem}_std.nii.gz").is_file()
    capsys.readouterr()
    assert _run([scan], tiny_recon_model, out, "--overwrite") == 0  # K = 1 now: the old std map goes too
    err = capsys.readouterr().err.splitlines()
    assert not (out / "nifti" / f"{scan.stem}_std.nii.gz").exists()
    assert err[0] == (f"mridiff: note: {scan} is fully sampled; undersampling retrospectively at 4x "
                      "(random 1D mask, centre fraction 0.08)")
    entry = json.loads((out / "metrics.json").read_text())["files"][0]
    assert "std" not in entry["outputs"]
    assert sorted(p.name for p in (out / "nifti").iterdir()) == [f"{scan.stem}.nii.gz"]


def _three_scans(tiny_dataset: dict[str, Path], where: Path) -> list[Path]:
    src = next(tiny_dataset["singlecoil"].glob("*.h5"))
    where.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(src, where / name)) for name in ("a.h5", "b.h5", "c.h5")]


def test_a_crashing_scan_does_not_abort_the_directory(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                      tiny_recon_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from mridiff.inference import recon_files

    _three_scans(tiny_dataset, tmp_path / "scans")
    real = recon_files.Reconstructor.reconstruct
    calls: list[int] = []

    def crash_on_b(self: Any, kspace: Any, mask: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first batch of b.h5
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nsecond line")
        return real(self, kspace, mask, **kwargs)

    monkeypatch.setattr(recon_files.Reconstructor, "reconstruct", crash_on_b)
    out = tmp_path / "out"
    rc = _run([tmp_path / "scans"], tiny_recon_model, out, "--batch-size", "8")
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    b = tmp_path / "scans" / "b.h5"
    assert err.strip().splitlines()[-2:] == [
        "mridiff: 1 file(s) failed:", f"  {b}: failed with RuntimeError: CUDA error: an illegal memory access was "
        "encountered"]
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["a.h5", "c.h5"]
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "c.h5"]


def test_same_file_name_in_two_folders_is_refused_up_front(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                           tiny_recon_model: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    first = _three_scans(tiny_dataset, tmp_path / "site1")[0]
    second = _three_scans(tiny_dataset, tmp_path / "site2")[0]
    out = tmp_path / "out"
    assert _run([tmp_path / "site1", tmp_path / "site2"], tiny_recon_model, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mridiff: error: {second}: same output name as {first}"), err
    assert not out.exists()
    # The same file named twice (directly and through its folder) is one input, not a collision.
    assert _run([first, tmp_path / "site1"], tiny_recon_model, out) == 0
    assert len(json.loads((out / "metrics.json").read_text())["files"]) == 3


def test_metrics_json_keeps_earlier_runs_and_is_written_after_every_file(
        tiny_dataset: dict[str, Path], tmp_path: Path, tiny_recon_model: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from mridiff.inference import recon_files

    a, b, c = _three_scans(tiny_dataset, tmp_path / "scans")
    out = tmp_path / "out"
    assert _run([a], tiny_recon_model, out) == 0
    assert _run([b], tiny_recon_model, out) == 0  # a second run into the same --out adds, never replaces
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "b.h5"]

    real = recon_files.reconstruct_file

    def killed_at_c(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "c.h5":
            raise KeyboardInterrupt  # the run dies here: what it finished must already be on disk
        return real(path, *args, **kwargs)

    monkeypatch.setattr(recon_files, "reconstruct_file", killed_at_c)
    assert _run([tmp_path / "scans"], tiny_recon_model, out, "--overwrite") == 130
    monkeypatch.undo()
    entries = json.loads((out / "metrics.json").read_text())["files"]
    assert [e["file"] for e in entries] == ["a.h5", "b.h5"] and all(e["options"]["overwrite"] for e in entries)
    assert _run([tmp_path / "scans"], tiny_recon_model, out) == 0  # resumes: a, b skipped, c done
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "b.h5", "c.h5"]


def test_foreign_metrics_json_is_not_replaced_without_overwrite(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"psnr": [31.2, 30.9], "note": "my own results"}')
    assert _run([scan], tiny_recon_model, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mridiff: error: {out / 'metrics.json'}: exists but is not a metrics file written by mridiff "
                   "(pass --overwrite to replace it, or choose another --out)"]
    assert (out / "metrics.json").read_text().startswith('{"psnr"') and sorted(p.name for p in out.iterdir()) == [
        "metrics.json"]
    assert _run([scan], tiny_recon_model, out, "--overwrite") == 0
    assert json.loads((out / "metrics.json").read_text())["files"][0]["file"] == scan.name


def test_target_smaller_than_the_reconstruction_gives_outputs_without_metrics(
        tmp_path: Path, tiny_recon_model: Path, data_helpers: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    k = (rng.normal(size=(2, 32, 32)) + 1j * rng.normal(size=(2, 32, 32))).astype(np.complex64)
    scan = data_helpers.write_h5(tmp_path / "small_target.h5", k, target=np.ones((k.shape[0], 20, 20), np.float32),
                                 header=data_helpers.header((32, 32), (32, 32)))
    out = tmp_path / "out"
    assert _run([scan], tiny_recon_model, out) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "smaller than the reconstruction" in err
    entry = json.loads((out / "metrics.json").read_text())["files"][0]
    assert "metrics_error" in entry and "mridiff" not in entry
    assert (out / "reconstructions" / "small_target.h5").is_file()

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
from mridiff.inference.options import preset_options
from mridiff.io.figures import COLOURBAR_WIDTH


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
    assert png.size[0] == 5 * (32 + COLOURBAR_WIDTH)  # zero-filled, mridiff, target, |error|, std; colour bars
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
    assert entry["mask"]["source"] == "file" and "metrics_error" not in entry
    with h5py.File(scan, "r") as fh:
        mask = fh["mask"][()]
    # The mask actually used, measured (not the --acceleration default, which did not apply).
    assert entry["mask"]["acceleration"] == pytest.approx(mask.size / mask.sum(), abs=1e-4)
    assert entry["mask"]["dims"] == "2D" and entry["mask"]["center_block"][0] >= 24
    assert "acceleration" not in entry["options"] and "center_fraction" not in entry["options"]
    with h5py.File(scan, "r") as fh:
        target = fh["reconstruction_rss"][()]
    side = (slice(None), slice(None), slice(25, 205))  # the central 180 x 180 square
    assert entry["mridiff"]["PSNR"] == pytest.approx(float(fm_eval.psnr(target[side], recon[side])))
    assert entry["mridiff"]["SSIM"] == pytest.approx(float(fm_eval.ssim(target[side], recon[side])[0]))


def test_failing_metrics_never_fail_a_finished_reconstruction(scan: Path, tmp_path: Path, tiny_recon_model: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mridiff.workflows import recon

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Invalid shapes.")

    monkeypatch.setattr(recon, "volume_metrics", broken)
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
    from mridiff.workflows import recon

    _three_scans(tiny_dataset, tmp_path / "scans")
    real = recon.Reconstructor.reconstruct_slices
    calls: list[int] = []

    def crash_on_b(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # b.h5
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nsecond line")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(recon.Reconstructor, "reconstruct_slices", crash_on_b)
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
    from mridiff.workflows import recon_dir

    a, b, c = _three_scans(tiny_dataset, tmp_path / "scans")
    out = tmp_path / "out"
    assert _run([a], tiny_recon_model, out) == 0
    assert _run([b], tiny_recon_model, out) == 0  # a second run into the same --out adds, never replaces
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "b.h5"]

    real = recon_dir.reconstruct_file

    def killed_at_c(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "c.h5":
            raise KeyboardInterrupt  # the run dies here: what it finished must already be on disk
        return real(path, *args, **kwargs)

    monkeypatch.setattr(recon_dir, "reconstruct_file", killed_at_c)
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


# ------------------------------------------------------------------ issue 14 item 2: killed directory runs resume

# Runs mridiff in a child that signals itself just before its N-th os.replace into the output directory: every
# output reaches its place by os.replace (atomic writes, and the moves of a commit), so N picks a moment exactly.
KILLER = """
import os, signal, sys
sig, limit, out = getattr(signal, sys.argv[1]), int(sys.argv[2]), os.path.abspath(sys.argv[3])
real, calls = os.replace, 0
def replace(src, dst, *args, **kwargs):
    global calls
    if os.path.abspath(os.fspath(dst)).startswith(out + os.sep):
        calls += 1
        if calls == limit:
            print(f"signal before replace #{calls}: {os.fspath(dst)}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), sig)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from mridiff.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _recon_args(scans: Path, model: Path, out: Path) -> list[str]:
    return ["reconstruct", str(scans), "--ckpt", str(model), "--steps", "1", "--device", "cpu", "--out", str(out),
            "--no-progress"]


def _child(tmp_path: Path, sig: str, limit: int, scans: Path, model: Path, out: Path) -> Any:
    import os
    import subprocess
    import sys

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), sig, str(limit), str(out), *_recon_args(scans, model, out)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def _replaces_of_a_run(monkeypatch: pytest.MonkeyPatch, scans: Path, model: Path, out: Path) -> list[tuple[str, str]]:
    """Run in-process and list every os.replace into ``out`` as (source, destination) relative to ``out``."""
    import os

    real, seen = os.replace, []

    def recording(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        d = Path(os.fspath(dst)).absolute()
        if out.absolute() in d.parents:
            s = Path(os.fspath(src)).absolute()
            seen.append((str(s.relative_to(out.absolute())) if out.absolute() in s.parents else str(s),
                         str(d.relative_to(out.absolute()))))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording)
    assert main(_recon_args(scans, model, out)) == 0
    monkeypatch.undo()
    return seen


def _outputs(out: Path) -> dict[str, Any]:
    """Every file under ``out`` by relative path: arrays for HDF5/NIfTI, bytes for PNG, entries for metrics.json."""
    found: dict[str, Any] = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(out))
        if p.suffix == ".log":  # the inference log: times and process ids differ from run to run
            continue
        if p.suffix == ".h5":
            with h5py.File(p, "r") as fh:
                found[rel] = {k: fh[k][()].tobytes() for k in fh}
        elif p.name.endswith(".nii.gz"):
            img = nib.load(p)
            found[rel] = (np.asarray(img.dataobj).tobytes(), img.affine.tobytes())
        elif p.name == "metrics.json":
            entries = json.loads(p.read_text())["files"]
            found[rel] = [{k: v for k, v in e.items() if k not in ("seconds_per_slice", "outputs", "provenance")}
                          for e in entries]
            assert all(Path(v).is_file() for e in entries for v in e["outputs"].values())
        else:
            found[rel] = p.read_bytes()
    return found


def test_directory_run_killed_at_any_moment_finishes_on_rerun_without_overwrite(
        tiny_dataset: dict[str, Path], tmp_path: Path, tiny_recon_model: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _three_scans(tiny_dataset, tmp_path / "scans")
    scans = tmp_path / "scans"
    reference = tmp_path / "reference"
    replaces = _replaces_of_a_run(monkeypatch, scans, tiny_recon_model, reference)
    expected = _outputs(reference)
    assert {"figures/a.png", "figures/b.png", "figures/c.png", "metrics.json", "nifti/a.nii.gz", "nifti/b.nii.gz",
            "nifti/c.nii.gz", "reconstructions/a.h5", "reconstructions/b.h5", "reconstructions/c.h5"} <= set(expected)

    def staged(i: int) -> bool:
        return replaces[i][1].startswith(".mridiff-partial/")

    def moved_into_place(i: int, name: str) -> bool:
        return replaces[i][0].startswith(f".mridiff-partial/{name}/out/") and not staged(i)

    a_moves = [i for i in range(len(replaces)) if moved_into_place(i, "a.h5")]
    b_moves = [i for i in range(len(replaces)) if moved_into_place(i, "b.h5")]
    a_metrics = next(i for i in range(a_moves[-1], len(replaces)) if replaces[i][1] == "metrics.json")
    assert replaces[a_moves[-1]][1] == "reconstructions/a.h5" and len(a_moves) >= 3 and len(b_moves) >= 3
    moments = {  # 0-based index of the os.replace before which the run is killed
        "while a.h5's outputs are being staged": next(i for i in range(len(replaces)) if staged(i)),
        "after a.h5's journal, before any of its outputs is in place": a_moves[0],
        "with a.h5's NIfTI and PNG in place but not its submission file": a_moves[-1],
        "with all of a.h5's outputs in place but not its metrics entry": a_metrics,
        "half-way through moving b.h5's outputs into place": b_moves[1],
    }
    for n, (moment, index) in enumerate(moments.items()):
        out = tmp_path / f"killed{n}"
        child = _child(tmp_path, "SIGKILL", index + 1, scans, tiny_recon_model, out)
        assert child.returncode == -9, (moment, child.stderr)
        assert f"signal before replace #{index + 1}: " in child.stderr
        capsys.readouterr()
        rc = main(_recon_args(scans, tiny_recon_model, out))  # the same command again: no --overwrite
        err = capsys.readouterr().err
        assert rc == 0, (moment, err)
        assert "already exists" not in err
        assert _outputs(out) == expected, moment
        assert not (out / ".mridiff-partial").exists() and not list(out.rglob("*.part")), moment


def test_directory_run_killed_from_outside_finishes_on_rerun(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                             tiny_recon_model: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL sent from another process once b.h5 is being worked on (whenever that is), then rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _three_scans(tiny_dataset, tmp_path / "scans")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "mridiff.cli", *_recon_args(tmp_path / "scans", tiny_recon_model,
                                                                              out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not (out / ".mridiff-partial" / "b.h5").exists():
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=600)
    assert main(_recon_args(tmp_path / "scans", tiny_recon_model, out)) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["a.h5", "b.h5", "c.h5"]
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "b.h5", "c.h5"]
    assert not (out / ".mridiff-partial").exists() and not list(out.rglob("*.part"))


@pytest.mark.parametrize("where", ["staging", "commit"])
def test_sigterm_stops_cleanly_and_the_rerun_finishes(where: str, tiny_dataset: dict[str, Path], tmp_path: Path,
                                                      tiny_recon_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while a.h5 is staged stops at once (nothing of a.h5 stays); during its commit it is held until the
    commit is done (a.h5 finished). Either way: exit 143, one line, no temporary file, and the rerun finishes."""
    _three_scans(tiny_dataset, tmp_path / "scans")
    replaces = _replaces_of_a_run(monkeypatch, tmp_path / "scans", tiny_recon_model, tmp_path / "reference")
    commit = next(i for i, (src, dst) in enumerate(replaces) if src.startswith(".mridiff-partial/a.h5/out/")
                  and not dst.startswith(".mridiff-partial"))
    index = 0 if where == "staging" else commit + 1  # the second move of a.h5's commit
    out = tmp_path / "out"
    child = _child(tmp_path, "SIGTERM", index + 1, tmp_path / "scans", tiny_recon_model, out)
    assert child.returncode == 143, child.stderr
    assert child.stderr.strip().splitlines()[-1] == "mridiff: interrupted" and "Traceback" not in child.stderr
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    done = ["figures/a.png", "metrics.json", "nifti/a.nii.gz", "reconstruct.log", "reconstructions/a.h5"]
    assert left == ([] if where == "staging" else done)
    assert not (out / ".mridiff-partial").exists()
    capsys.readouterr()
    assert main(_recon_args(tmp_path / "scans", tiny_recon_model, out)) == 0, capsys.readouterr().err
    assert [e["file"] for e in json.loads((out / "metrics.json").read_text())["files"]] == ["a.h5", "b.h5", "c.h5"]


# --------------------------------------------------------- issue 14 item 5: NIfTI the right way up, in mm

COLIN27 = Path(__file__).resolve().parents[3] / "shared" / "data" / "colin27_t1_1mm.nii.gz"


def _asymmetric_source(path: Path) -> Path:
    """A head-like volume that no flip maps onto itself: a bright block anterior-right, a dark hole posterior-left,
    stored LAS (x flipped) with anisotropic voxels, so canonical reorientation is exercised too."""
    shape = (40, 48, 5)
    x, y, _ = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")  # voxel axes; x runs to the left
    vol = np.where((x / 0.9) ** 2 + (y / 0.9) ** 2 < 1, 60.0, 0.0)
    vol[(x < -0.2) & (x > -0.6) & (y > 0.3) & (y < 0.7)] = 200.0  # x < 0 is patient right (LAS), y > 0 anterior
    vol[(x > 0.2) & (x < 0.5) & (y < -0.2) & (y > -0.6)] = 10.0
    nib.save(nib.Nifti1Image(vol.astype(np.float32), np.diag([-1.1, 0.9, 3.0, 1.0])), path)
    return path


def _in_plane_correlation(source: Path, output: Path, k: int, source_slice: int) -> float:
    """Correlation of output slice ``k`` with the source, sampled at the same (centred) world positions.

    fastMRI files carry no position, so the output volume is centred on the origin; the source slice's in-plane
    centre is moved there. Everything else (directions, voxel sizes) comes from the two affines.
    """
    from scipy.ndimage import map_coordinates

    src = nib.as_closest_canonical(nib.load(source))
    out = nib.load(output)
    data = np.asarray(out.dataobj)[:, :, k].astype(np.float64)
    ii, jj = np.meshgrid(np.arange(data.shape[0]), np.arange(data.shape[1]), indexing="ij")
    world = out.affine @ np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)])
    sx, sy = src.shape[:2]
    centre = src.affine @ np.array([(sx - 1) / 2, (sy - 1) / 2, source_slice, 1.0])
    world[:2] += centre[:2, None] - (out.affine @ np.array([(data.shape[0] - 1) / 2, (data.shape[1] - 1) / 2, k,
                                                           1.0]))[:2, None]
    vox = np.linalg.inv(src.affine) @ world
    vox[2] = source_slice
    sampled = map_coordinates(np.asarray(src.dataobj, dtype=np.float64), vox[:3], order=1, cval=0.0)
    return float(np.corrcoef(sampled, data.ravel())[0, 1])


@pytest.mark.parametrize("source", ["asymmetric", "colin27"])
def test_nifti_round_trip_shows_the_source_the_right_way_up(source: str, tmp_path: Path, tiny_recon_model: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """NIfTI -> fastMRI (data_prep.nifti_to_fastmri) -> reconstruct -> NIfTI gives the source slice back in the same
    world orientation. The converted file gets a mask that samples everything, so the reconstruction is the image
    whatever the (untrained) network does: only the geometry is tested."""
    from data_prep.nifti_to_fastmri import main as nifti_to_fastmri

    if source == "colin27":
        if not COLIN27.is_file():
            pytest.skip("Colin27 is not in ../shared/data")
        src, extra = COLIN27, ["--slices-range", "88:91", "--size", "64"]
    else:
        src, extra = _asymmetric_source(tmp_path / "asym.nii.gz"), ["--size", "32"]
    assert nifti_to_fastmri([str(src), str(tmp_path / "h5"), "--coils", "1", *extra]) == 0
    scan = next((tmp_path / "h5").glob("*.h5"))
    with h5py.File(scan, "a") as fh:
        fh.create_dataset("mask", data=np.ones(fh["kspace"].shape[-1], np.float32))
        kept = [int(i) for i in fh.attrs["source_slice_index"]]
    out = tmp_path / "out"
    assert _run([scan], tiny_recon_model, out) == 0, capsys.readouterr().err
    nifti = out / "nifti" / scan.name.replace(".h5", ".nii.gz")
    img = nib.load(nifti)
    assert nib.aff2axcodes(img.affine) == ("R", "P", "S")
    assert img.header.get_xyzt_units() == ("mm", "sec")
    for k in range(img.shape[2]):
        assert _in_plane_correlation(src, nifti, k, kept[k]) > 0.97, k
    # What the old affine (no flip of the row axis) showed: anterior at the bottom, far from the source.
    flipped = nib.Nifti1Image(np.asarray(img.dataobj)[:, ::-1], img.affine)
    nib.save(flipped, tmp_path / "upside_down.nii.gz")
    upside_down = _in_plane_correlation(src, tmp_path / "upside_down.nii.gz", 0, kept[0])
    assert upside_down < _in_plane_correlation(src, nifti, 0, kept[0]) - 0.05


# ----------------------------------------------------------------------- issue 14 items 6, 7: metrics.json provenance


def test_metrics_json_records_provenance_the_mask_used_and_an_aggregate(
        tiny_dataset: dict[str, Path], fastmri_mock_dataset: dict[str, Path], tmp_path: Path,
        tiny_recon_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    import mridiff
    from mridiff.training.checkpoint import sha256_file

    scans = _three_scans(tiny_dataset, tmp_path / "scans")[:2]
    own = Path(shutil.copy(fastmri_mock_dataset["singlecoil_test"] / "file0.h5", tmp_path / "scans" / "own.h5"))
    out = tmp_path / "out"
    assert _run([*scans, own], tiny_recon_model, out, "--seed", "3") == 0, capsys.readouterr().err
    assert "mean over 2 files (+/- sd): PSNR " in capsys.readouterr().out
    doc = json.loads((out / "metrics.json").read_text())
    prov = doc["provenance"]
    assert prov["model"]["path"] == str(tiny_recon_model.resolve())
    assert prov["model"]["sha256"] == sha256_file(tiny_recon_model)
    assert prov["versions"]["mridiff"] == mridiff.__version__ and prov["versions"]["torch"] == torch.__version__
    assert prov["versions"]["fastmri"] and prov["device"] == "cpu"
    assert doc["options"]["center_fraction"] == 0.08  # resolved, never null
    entries = {e["file"]: e for e in doc["files"]}
    for e in entries.values():
        assert e["provenance"] == prov
        sampler = preset_options("balanced", steps=1).sampler.value  # the default preset's sampler
        assert e["settings"] == {"seed": 3, "sampler": sampler, "steps": 1, "dc": "hard", "samples": 1,
                                 "sens_method": "espirit", "noise_std": None, "batch_size": 4}
    retro = entries["a.h5"]["mask"]
    assert retro["source"] == "retrospective" and retro["kind"] == "random" and retro["nominal_acceleration"] == 4
    assert retro["nominal_center_fraction"] == 0.08 and retro["dims"] == "1D"
    assert retro["acceleration"] == pytest.approx(32 / retro["lines"], abs=1e-4)
    assert retro["center_fraction"] >= round(32 * 0.08) / 32
    assert entries["a.h5"]["options"]["center_fraction"] == 0.08
    with h5py.File(own, "r") as fh:
        mask = fh["mask"][()].astype(bool)
    mine = entries["own.h5"]["mask"]  # the file's own mask: measured, and the --acceleration default is not claimed
    assert mine["source"] == "file" and "nominal_acceleration" not in mine
    assert mine["acceleration"] == pytest.approx(mask.size / mask.sum(), abs=1e-4) and mine["lines"] == mask.sum()
    centre = mask.size // 2
    lo, hi = centre, centre
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < mask.size - 1 and mask[hi + 1]:
        hi += 1
    assert mine["center_fraction"] == pytest.approx((hi - lo + 1) / mask.size, abs=1e-4)
    assert "acceleration" not in entries["own.h5"]["options"]
    agg = doc["aggregate"]
    psnr = [entries[n]["mridiff"]["PSNR"] for n in ("a.h5", "b.h5")]  # own.h5 has no ground truth
    assert agg["mridiff"]["PSNR"]["n"] == 2 and agg["files"] == 3 and agg["settings_differ"] is False
    assert agg["mridiff"]["PSNR"]["mean"] == pytest.approx(np.mean(psnr))
    assert agg["mridiff"]["PSNR"]["sd"] == pytest.approx(np.std(psnr, ddof=1))
    assert set(agg["zero_filled"]) == {"NMSE", "PSNR", "SSIM"}


def test_steps_with_ddpm_is_an_error_not_ignored(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                 tiny_recon_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scans = _three_scans(tiny_dataset, tmp_path / "scans")
    rc = _run([tmp_path / "scans"], tiny_recon_model, tmp_path / "out", "--sampler", "ddpm")  # _run passes --steps 1
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1] == ("mridiff: error: the DDPM sampler always takes all 1000 steps of its schedule, "
                                   "not 1 (leave --steps out, or use --sampler ddim)")
    assert not (tmp_path / "out" / "reconstructions").exists() and len(scans) == 3

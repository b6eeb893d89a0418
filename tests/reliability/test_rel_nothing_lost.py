"""Issue 6.3: atomic outputs, read-only inputs, no silent overwrite, resumable directory runs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bad_inputs as bi
import h5py
import numpy as np
import PIL.Image
import pytest
import torch

from mridiff.data import h5_writer
from mridiff.io import models as ckpt_mod
from mridiff.io.figures import panel_png
from mridiff.io.outputs import write_json, write_submission_h5
from mridiff.models.unet import ConditionalUNet
from mridiff.training.checkpoint import SafeCheckpointIO, export_model, safe_torch_load


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def _listing(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ every writer: a failure midway leaves nothing


def _h5_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    original = h5py.Group.create_dataset

    def create_then_fail(self: h5py.Group, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)  # the temp file now holds a dataset
        raise _disk_full()

    monkeypatch.setattr(h5py.Group, "create_dataset", create_then_fail)
    return lambda: write_submission_h5(target, np.ones((2, 8, 8), np.float32))


def _png_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    def partial_save(self: PIL.Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n partial")
        raise _disk_full()

    monkeypatch.setattr(PIL.Image.Image, "save", partial_save)
    return lambda: panel_png([[np.ones((8, 8))]], ["a"], target)


def _json_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    def fsync_fails(fd: int) -> None:  # the bytes are written and flushed, the sync fails
        raise _disk_full()

    monkeypatch.setattr(os, "fsync", fsync_fails)
    return lambda: write_json(target, {"psnr": 30.0})


def _export_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    def partial_save_file(state: dict[str, torch.Tensor], filename: str, *args: Any, **kwargs: Any) -> None:
        Path(filename).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{partial")
        raise _disk_full()

    monkeypatch.setattr(ckpt_mod, "save_file", partial_save_file)
    net = ConditionalUNet(bi.tiny_unet_config())
    return lambda: export_model(net, bi.tiny_meta(bi.tiny_unet_config()), target)


def _checkpoint_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    def partial_torch_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(b"PK\x03\x04 partial zip")
        raise _disk_full()

    monkeypatch.setattr(torch, "save", partial_torch_save)
    return lambda: SafeCheckpointIO().save_checkpoint({"global_step": 7}, target)


def _scan_fails_midway(monkeypatch: pytest.MonkeyPatch, target: Path) -> Callable[[], Any]:
    original = h5_writer.simulate_kspace
    calls = {"n": 0}

    def fail_on_second_slice(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _disk_full()
        return original(*args, **kwargs)

    monkeypatch.setattr(h5_writer, "simulate_kspace", fail_on_second_slice)
    return lambda: bi.write_good_scan(target)


WRITERS: dict[str, tuple[str, Callable[[pytest.MonkeyPatch, Path], Callable[[], Any]]]] = {
    "submission_h5": ("recon.h5", _h5_fails_midway),
    "panel_png": ("panel.png", _png_fails_midway),
    "metrics_json": ("metrics.json", _json_fails_midway),
    "exported_model": ("model.safetensors", _export_fails_midway),
    "training_checkpoint": ("last.ckpt", _checkpoint_fails_midway),
    "data_prep_scan": ("scan.h5", _scan_fails_midway),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_write_failing_midway_leaves_no_partial_or_temp_file(writer: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    name, sabotage = WRITERS[writer]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    keep = out_dir / "earlier_result.txt"
    keep.write_text("unrelated file")
    created: list[Path] = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name_ = real_mkstemp(*args, **kwargs)
        created.append(Path(name_))
        return fd, name_

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    write = sabotage(monkeypatch, out_dir / name)
    with pytest.raises(OSError, match="No space left"):
        write()
    assert created, "the writer did not go through a temporary file"
    assert _listing(out_dir) == {"earlier_result.txt": hashlib.sha256(b"unrelated file").hexdigest()}
    assert not any(p.exists() for p in created)


def test_failed_checkpoint_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    last = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"global_step": 5, "state_dict": {"w": torch.ones(3)}}, last)
    before = last.read_bytes()
    write = _checkpoint_fails_midway(monkeypatch, last)
    with pytest.raises(OSError):
        write()
    monkeypatch.undo()
    assert last.read_bytes() == before
    assert safe_torch_load(last)["global_step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_reconstruct_failing_at_the_last_output_leaves_no_outputs(tmp_path: Path, good_scan: Callable[..., Path],
                                                                  run_recon: Callable[..., bi.Outcome],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The PNG (written after both NIfTI files) fails: no output of the file survives, and a rerun completes."""
    scan = good_scan()
    out = tmp_path / "out"
    _png_fails_midway(monkeypatch, out / "unused.png")
    failed = run_recon([scan], out)  # the CLI turns the OSError into one line and exit status 1
    assert failed.exit_code == 1 and "No space left" in failed.stderr
    errors = [ln for ln in failed.stderr.strip().splitlines() if not ln.startswith("mridiff: note: ")]
    assert len(errors) == 1, failed.stderr
    monkeypatch.undo()
    assert [p for p in out.rglob("*") if p.is_file()] == []

    outcome = run_recon([scan], out)  # no --overwrite needed: nothing was left behind
    assert outcome.exit_code == 0, outcome.stderr
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [  # K=1: no std map
        "metrics.json", "reconstruct.log", "scan.h5", "scan.nii.gz", "scan.png"]


# ---------------------------------------------------------------------------------------- inputs are read-only


@pytest.fixture
def input_opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Record every ``h5py.File`` open (name, mode) and every Python-level ``open`` with a write flag."""
    seen: list[tuple[str, str]] = []
    real_file = h5py.File

    class RecordingFile(real_file):  # type: ignore[misc, valid-type]
        def __init__(self, name: Any, mode: str = "r", *args: Any, **kwargs: Any) -> None:
            seen.append((str(name), mode))
            super().__init__(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", RecordingFile)
    _AUDIT["log"] = seen
    yield seen
    _AUDIT["log"] = None


_AUDIT: dict[str, list[tuple[str, str]] | None] = {"log": None}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    log = _AUDIT["log"]
    if log is None or event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
        return
    mode, flags = args[1], args[2]
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC))
    if writes:
        log.append((os.fsdecode(args[0]), f"python-open:{mode}:{flags}"))


sys.addaudithook(_audit)


def test_input_is_opened_read_only_and_left_unchanged(tmp_path: Path, good_scan: Callable[..., Path],
                                                      run_recon: Callable[..., bi.Outcome],
                                                      input_opens: list[tuple[str, str]]) -> None:
    scan = good_scan()
    before = (scan.read_bytes(), scan.stat().st_mtime_ns, stat.S_IMODE(scan.stat().st_mode))
    outcome = run_recon([scan], tmp_path / "out")
    assert outcome.exit_code == 0, outcome.stderr
    after = (scan.read_bytes(), scan.stat().st_mtime_ns, stat.S_IMODE(scan.stat().st_mode))
    assert after == before
    on_input = [mode for name, mode in input_opens if Path(name) == scan]
    assert on_input and set(on_input) == {"r"}, on_input  # opened, and never for writing


def test_read_only_input_file_and_directory_still_work(tmp_path: Path, run_recon: Callable[..., bi.Outcome]) -> None:
    src = tmp_path / "incoming"
    src.mkdir()
    scan = bi.write_good_scan(src / "scan.h5")
    scan.chmod(0o444)
    src.chmod(0o555)
    try:
        outcome = run_recon([src], tmp_path / "out")
        assert outcome.exit_code == 0, outcome.stderr
        assert (tmp_path / "out" / "reconstructions" / "scan.h5").is_file()
        assert sorted(p.name for p in src.iterdir()) == ["scan.h5"]  # no lock or temp file beside the input
    finally:
        src.chmod(0o755)
        scan.chmod(0o644)


# ------------------------------------------------------------------------------------------- no silent overwrite


def test_existing_outputs_are_never_overwritten_without_flag(tmp_path: Path, good_scan: Callable[..., Path],
                                                             run_recon: Callable[..., bi.Outcome]) -> None:
    scan, out = good_scan(), tmp_path / "out"
    assert run_recon([scan], out).exit_code == 0
    first = _listing(out)
    inode = (out / "reconstructions" / "scan.h5").stat().st_ino

    again = run_recon([scan], out)
    assert again.exit_code == 2
    existing = out / "reconstructions" / "scan.h5"
    assert again.stderr.strip().splitlines() == [
        f"mridiff: error: {existing}: output already exists (pass --overwrite to replace it)"]
    assert _listing(out) == first
    assert (out / "reconstructions" / "scan.h5").stat().st_ino == inode

    forced = run_recon([scan], out, "--overwrite")
    assert forced.exit_code == 0, forced.stderr
    assert (out / "reconstructions" / "scan.h5").stat().st_ino != inode  # replaced (atomically, by rename)


# --------------------------------------------------------------------------------------------- directory mode


def test_directory_run_continues_after_bad_file_reports_it_and_skips_finished(
        tmp_path: Path, run_recon: Callable[..., bi.Outcome]) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    bi.write_good_scan(src / "a.h5", seed=1)
    bad_k = bi.good_kspace()
    bad_k[-1, 0, 0] = np.nan  # found only when the last slice is read, after a.h5's outputs were written
    bi.write_scan(src / "b_bad.h5", bad_k)
    bi.write_good_scan(src / "c.h5", seed=2)
    out = tmp_path / "out"

    first = run_recon([src], out)
    assert first.exit_code == 2
    err = first.stderr.strip().splitlines()
    assert err[-2:] == ["mridiff: 1 file(s) failed:", f"  {src / 'b_bad.h5'}: k-space slice 2 contains NaN or Inf "
                        "(the scan is damaged; export it again)"]
    made = _listing(out)
    for stem in ("a", "c"):
        assert f"reconstructions/{stem}.h5" in made and f"figures/{stem}.png" in made
    assert not any("b_bad" in name for name in made)  # nothing partial for the bad file
    assert json.loads((out / "metrics.json").read_text())["files"][0]["file"] == "a.h5"

    second = run_recon([src], out)
    assert second.exit_code == 2
    assert "skipped 2 file(s) with existing outputs" in second.stdout
    assert {k: v for k, v in _listing(out).items() if k != "reconstruct.log"} == {
        k: v for k, v in made.items() if k != "reconstruct.log"}  # finished files untouched (the log grows)

    bi.write_good_scan(src / "b_bad.h5", seed=3)  # the site re-exports the damaged scan
    third = run_recon([src], out)
    assert third.exit_code == 0, third.stderr
    assert (out / "reconstructions" / "b_bad.h5").is_file()
    assert all(_listing(out)[k] == v for k, v in made.items() if k not in ("metrics.json", "reconstruct.log"))

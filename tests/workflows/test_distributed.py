"""``mridiff reconstruct DIR`` and ``mridiff augment`` under ``torchrun`` (issue 15 item 3): CPU, gloo, 2 ranks.

The outputs of 2 ranks are bit-identical to those of one process, each file is written by one rank once, and a
job whose rank is SIGKILLed is finished by the same command again without redoing the finished files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import pytest

from mridiff.workflows.distributed import Rank, torchrun_rank
from mridiff.workflows.metrics_log import MetricsLog, partial_path

NAMES = ["a", "b", "c", "d", "e", "f"]


def test_torchrun_environment_and_shards() -> None:
    assert torchrun_rank({}) is None
    assert torchrun_rank({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None  # one process: plain run
    rank = torchrun_rank({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert rank == Rank(3, 4, 1) and not rank.is_main
    assert rank.shard(list(range(10))) == [3, 7] and [i for i in range(10) if rank.owns(i)] == [3, 7]
    shards = [Rank(r, 3, r).shard(NAMES) for r in range(3)]
    assert sorted(sum(shards, [])) == NAMES and shards[0] == ["a", "d"]
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(ValueError, match="RANK"):
            torchrun_rank(bad)


def test_rank_zero_merges_partial_metrics_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    MetricsLog(path, {}, False).add({"file": "old.h5", "x": 1})
    for rank, names in ((1, ["d.h5", "b.h5"]), (0, ["c.h5", "a.h5"])):
        log = MetricsLog(path, {"rank": rank}, False, rank=rank)
        for name in names:
            log.add({"file": name, "rank": rank})
        assert partial_path(path, rank).is_file()
    assert [e["file"] for e in json.loads(path.read_text())["files"]] == ["old.h5"]  # ranks never write it
    # What a rank killed inside an atomic write leaves (mkstemp's name for the partial and for metrics.json).
    leftovers = [tmp_path / "..metrics.rank1.json.t2yfrlfl.part", tmp_path / ".metrics.json.ab12cd.part"]
    for leftover in leftovers:
        leftover.write_text("{")
    MetricsLog(path, {}, False, rank=0).merge_partials()
    assert not any(p.exists() for p in leftovers)
    doc = json.loads(path.read_text())
    assert [e["file"] for e in doc["files"]] == ["old.h5", "a.h5", "b.h5", "c.h5", "d.h5"]
    assert doc["aggregate"]["files"] == 5 and not list(tmp_path.glob(".metrics.rank*.json"))


@pytest.fixture(scope="module")
def six_scans(tiny_dataset: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six single-coil 32x32 scans (a.h5 ... f.h5: one volume under six names, so six different masks)."""
    src = sorted(tiny_dataset["singlecoil"].glob("*.h5"))[0]
    folder = tmp_path_factory.mktemp("six") / "scans"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(src, folder / f"{name}.h5")
    return folder


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _command(nproc: int, *args: str) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "mridiff.cli", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "mridiff.cli", *args]


def _recon(nproc: int, scans: Path, model: Path, out: Path) -> list[str]:
    return _command(nproc, "reconstruct", str(scans), "--ckpt", str(model), "--sampler", "ddim", "--steps", "6",
                    "--device", "cpu", "--out", str(out), "--no-progress")


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _results(out: Path) -> dict[str, Any]:
    """Arrays of every result file and the metrics entries without timings (logs differ by time and pid)."""
    found: dict[str, Any] = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if not p.is_file() or p.suffix == ".log":
            continue
        if p.suffix == ".h5":
            with h5py.File(p) as fh:
                found[rel] = {k: fh[k][()].tobytes() for k in fh}
        elif p.name.endswith(".nii.gz"):
            found[rel] = (np.asarray(nib.load(p).dataobj).tobytes(), nib.load(p).affine.tobytes())
        elif p.name == "metrics.json":
            timing = ("seconds_per_slice", "provenance", "outputs")
            entries = json.loads(p.read_text())["files"]
            found[rel] = sorted(json.dumps({k: v for k, v in e.items() if k not in timing}, sort_keys=True)
                                for e in entries)
        else:
            found[rel] = p.read_bytes()
    return found


def _worker_pid(token: str, rank: int) -> int | None:
    """The process of the job tagged ``token`` (an environment variable the workers inherit) with rank ``rank``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if f"MRIDIFF_TEST_JOB={token}".encode() in env and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def _finished(out: Path) -> list[str]:
    """Inputs whose outputs are committed: submission file in place, no journal of an unfinished commit."""
    return sorted(p.name for p in (out / "reconstructions").glob("*.h5")
                  if not (out / ".mridiff-partial" / p.name / "commit.json").exists())


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix != ".log" and p.name != "metrics.json" and ".mridiff-partial" not in p.parts}


def test_two_ranks_match_one_process_and_a_killed_rank_is_finished_by_a_rerun(
        six_scans: Path, tiny_recon_model: Path, tmp_path: Path) -> None:
    _run(_recon(1, six_scans, tiny_recon_model, tmp_path / "single"))
    _run(_recon(2, six_scans, tiny_recon_model, tmp_path / "multi"))
    expected = _results(tmp_path / "single")
    assert len([k for k in expected if k.startswith("reconstructions/")]) == 6
    assert _results(tmp_path / "multi") == expected  # bit-identical outputs, the same metrics
    logs = {name: (tmp_path / "multi" / name).read_text() for name in ("reconstruct.log", "reconstruct.rank1.log")}
    for rank, text in enumerate(logs.values()):  # each file done by its rank (files[rank::2]) and only there
        assert [n for n in NAMES if f"{n}.h5: " in text] == NAMES[rank::2]
    assert not list((tmp_path / "multi").glob(".metrics.rank*"))
    assert not (tmp_path / "multi" / ".mridiff-partial").exists()

    # SIGKILL rank 1 once the first file is finished; torchrun then stops rank 0 too.
    out = tmp_path / "killed"
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    job = subprocess.Popen(_recon(2, six_scans, tiny_recon_model, out), env={**_env(), "MRIDIFF_TEST_JOB": token},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while job.poll() is None and not _finished(out):
            time.sleep(0.01)
        victim = _worker_pid(token, 1)
        assert victim is not None, "the job ended before a file was finished"
        os.kill(victim, signal.SIGKILL)
        job.wait(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode != 0
    done = _finished(out)
    assert 1 <= len(done) < 6, done  # killed part-way
    stems = {name.removesuffix(".h5") for name in done}
    before = {k: v for k, v in _stamps(out).items() if Path(k).name.split(".")[0] in stems}
    assert len(before) == 3 * len(done)  # submission file, NIfTI and PNG of each
    _run(_recon(2, six_scans, tiny_recon_model, out))
    after = _stamps(out)
    assert {k: after[k] for k in before} == before  # the finished files' outputs were not written again
    assert _results(out) == expected
    assert not list(out.glob(".metrics.rank*")) and not (out / ".mridiff-partial").exists()


def test_augment_on_two_ranks_matches_one_process(tiny_augment_model: Path, tmp_path: Path) -> None:
    def augment(nproc: int, out: Path) -> None:
        # --count, not --n: torchrun's own parser would take --n as an abbreviation of one of its options
        _run(_command(nproc, "augment", "--count", "5", "--out", str(out), "--ckpt", str(tiny_augment_model),
                      "--steps", "3", "--batch", "2", "--device", "cpu", "--no-progress"))

    augment(1, tmp_path / "single")
    augment(2, tmp_path / "multi")
    single, multi = _results(tmp_path / "single"), _results(tmp_path / "multi")
    assert multi == single and len([k for k in single if k.startswith("samples/")]) == 5
    rows = (tmp_path / "multi" / "manifest.csv").read_text().splitlines()
    assert len(rows) == 6 and not list((tmp_path / "multi").glob(".manifest.rank*"))
    rank1 = (tmp_path / "multi" / "augment.rank1.log").read_text()
    assert "rank 1/2: 2 new sample(s)" in rank1  # samples 1 and 3

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from mridiff.errors import InputError, Interrupted
from mridiff.io.staging import (
    STAGING_DIR,
    OutputStage,
    lock_output_dir,
    recover_all,
    signals_held,
    terminate_as_interrupt,
)


def _stage_one(out: Path, name: str = "scan.h5", text: str = "new") -> OutputStage:
    stage = OutputStage(out, name)
    stage.recover()
    stage.__enter__()
    for rel in ("nifti/scan.nii.gz", "reconstructions/scan.h5"):
        (stage.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage.root / rel).write_text(text)
    return stage


def test_commit_moves_everything_into_place_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stage = _stage_one(out)
    order: list[str] = []
    real = os.replace

    def recording(src: str, dst: str) -> None:
        order.append(Path(dst).name)
        real(src, dst)

    os.replace = recording  # type: ignore[assignment]
    try:
        placed = stage.commit(last=[out / "reconstructions/scan.h5"], on_placed=lambda: order.append("recorded"))
    finally:
        os.replace = real
    assert sorted(str(p.relative_to(out)) for p in placed) == ["nifti/scan.nii.gz", "reconstructions/scan.h5"]
    assert order[1:] == ["scan.nii.gz", "scan.h5", "recorded"]  # journal first, the marker file last, then recorded
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "nifti", "nifti/scan.nii.gz", "reconstructions", "reconstructions/scan.h5"]


def test_staging_survives_another_rank_removing_the_empty_base_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI race of two torchrun ranks: one removes the empty ``.mridiff-partial`` just after the other made it."""
    out = tmp_path / "out"
    out.mkdir()
    base, folder = out / STAGING_DIR, out / STAGING_DIR / "c.h5"
    real = os.mkdir
    removals: list[str] = []

    def other_rank_cleans_up(path: str | os.PathLike[str], mode: int = 0o777) -> None:
        if Path(path) == folder and base.is_dir() and not any(base.iterdir()) and len(removals) < 2:
            removals.append(str(path))
            base.rmdir()  # what the other rank's _remove_empty does after its commit
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", other_rank_cleans_up)
    with OutputStage(out, "c.h5") as stage:
        assert stage.root.is_dir()
    assert len(removals) == 2  # the race was hit (twice in a row) and survived
    assert not base.exists()  # and the stage still cleans up after itself


def test_a_killed_commit_marks_its_outputs_stale_until_the_input_is_committed_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stage = _stage_one(out, text="first")

    def killed() -> None:
        raise KeyboardInterrupt  # stands for a kill after the moves: the journal is not removed

    with pytest.raises(KeyboardInterrupt):
        stage.commit(on_placed=killed)
    assert stage.journal.is_file()
    # A second run that dies while staging keeps the journal: the outputs in place are still known to be stale.
    again = OutputStage(out, "scan.h5")
    assert again.recover() == {out / "nifti/scan.nii.gz", out / "reconstructions/scan.h5"}
    with pytest.raises(RuntimeError), again:
        (again.root / "nifti").mkdir()
        raise RuntimeError("killed while staging")
    recover_all(out)
    third = _stage_one(out, text="third")
    assert third.stale == {out / "nifti/scan.nii.gz", out / "reconstructions/scan.h5"}
    third.commit()
    assert (out / "reconstructions/scan.h5").read_text() == "third" and not (out / ".mridiff-partial").exists()


def test_a_journal_that_leaves_the_output_folder_is_ignored(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stage = OutputStage(out, "scan.h5")
    stage.folder.mkdir(parents=True)
    stage.journal.write_text(json.dumps({"outputs": ["../elsewhere.txt", "/etc/passwd", "nifti/scan.nii.gz"]}))
    assert stage.recover() == {out / "nifti/scan.nii.gz"}


def test_a_second_run_into_the_same_output_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with lock_output_dir(out):
        with pytest.raises(InputError, match="another mridiff run is writing into this output directory"):
            with lock_output_dir(out):
                pass
    with lock_output_dir(out):  # released
        pass


def test_sigterm_becomes_an_interrupt_and_is_held_back_during_a_commit() -> None:
    with terminate_as_interrupt():
        with pytest.raises(Interrupted) as caught:
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                reached = True  # the critical section runs to its end
        assert reached and caught.value.signum == signal.SIGTERM
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

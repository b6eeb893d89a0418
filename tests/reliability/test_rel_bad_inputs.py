"""Issue 6.1: every bad input gives one clear line and exit 2 with nothing written; soft problems warn and continue."""

from __future__ import annotations

from pathlib import Path

import bad_inputs as bi
import h5py
import pytest

ERROR_CASES = [c for c in bi.CASES if c.expected == "error"]
WARNING_CASES = [c for c in bi.CASES if c.expected == "warning"]
RECON_OUTPUTS = ("reconstructions/{n}.h5", "nifti/{n}.nii.gz", "figures/{n}.png", "metrics.json")  # K=1: no std
NOTE = "mridiff: note: "  # e.g. "fully sampled; undersampling retrospectively": said before the work, not an error


def _prefix(inv: bi.Invocation) -> str:
    return "mridiff: error: " if inv.tool == "mridiff" else "error: "


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.case_id)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: bi.BadCase, tmp_path: Path,
                                                         assets: bi.Assets) -> None:
    inv = bi.prepare(case, tmp_path, assets)
    before = bi.snapshot(inv.out_dir)
    outcome = bi.run_inprocess(inv)

    assert outcome.exit_code == 2, outcome.stderr
    lines = [ln for ln in outcome.stderr.strip().splitlines() if not ln.startswith(NOTE)]
    assert len(lines) == 1, outcome.stderr  # one error line, no traceback, no stray warnings
    line = lines[0]
    assert line.startswith(_prefix(inv))
    assert f"{inv.subject}: " in line  # names the file
    assert case.needle in line.lower()  # says what is wrong
    if case.group != "config":  # config errors name the key and the allowed keys / types instead
        assert line.endswith(")") and " (" in line  # says what to do
    assert "\x1b" not in line and "Traceback" not in outcome.stderr
    assert bi.snapshot(inv.out_dir) == before  # no output written or changed
    assert bi.temp_leftovers(tmp_path) == []
    for marker in inv.watch:
        assert not marker.exists(), f"payload ran: {marker}"


@pytest.mark.parametrize("case", WARNING_CASES, ids=lambda c: c.case_id)
def test_soft_problem_warns_and_writes_all_outputs(case: bi.BadCase, tmp_path: Path, assets: bi.Assets) -> None:
    inv = bi.prepare(case, tmp_path, assets)
    outcome = bi.run_inprocess(inv)

    assert outcome.exit_code == 0, outcome.stderr
    warned = [ln for ln in outcome.lines("warning") if case.needle in ln]
    assert len(warned) == 1, outcome.stderr
    assert warned[0].startswith("mridiff: warning: ") and str(inv.subject) in warned[0]
    assert outcome.lines("error") == [] and "Traceback" not in outcome.stderr
    stem = inv.subject.name[: -len(".h5")]
    for pattern in RECON_OUTPUTS:
        assert (inv.out_dir / pattern.format(n=stem)).is_file(), pattern


def test_missing_header_falls_back_to_kspace_shape(tmp_path: Path, assets: bi.Assets) -> None:
    inv = bi.prepare(bi.CASES_BY_ID["header_missing"], tmp_path, assets)
    assert bi.run_inprocess(inv).exit_code == 0
    with h5py.File(inv.out_dir / "reconstructions" / inv.subject.name, "r") as hf:
        assert hf["reconstruction"].shape == (bi.SLICES, bi.SIZE, bi.SIZE)


def test_recon_size_larger_than_encoded_is_cropped_to_the_smaller(tmp_path: Path, assets: bi.Assets) -> None:
    inv = bi.prepare(bi.CASES_BY_ID["recon_larger_than_encoded"], tmp_path, assets)
    assert bi.run_inprocess(inv).exit_code == 0
    with h5py.File(inv.out_dir / "reconstructions" / inv.subject.name, "r") as hf:
        # header asks for (40, 24) on a (32, 32) grid: rows clipped to 32, columns cropped to 24
        assert hf["reconstruction"].shape == (bi.SLICES, 32, 24)


def test_config_error_is_raised_before_any_data_is_touched(tmp_path: Path, assets: bi.Assets) -> None:
    """A typo is reported even when the data directory does not exist: validation comes first."""
    inv = bi.prepare(bi.CASES_BY_ID["config_unknown_key"], tmp_path, assets)
    cfg = Path(inv.argv[inv.argv.index("-c") + 1])
    cfg.write_text(cfg.read_text().replace(str(assets.train_data), str(tmp_path / "no_such_dir")))
    outcome = bi.run_inprocess(inv)
    assert outcome.exit_code == 2
    assert "train.ckpt_evry" in outcome.stderr and "no_such_dir" not in outcome.stderr
    assert not inv.out_dir.exists()


@pytest.mark.parametrize("case_id", ["truncated_hdf5", "config_unknown_key", "ckpt_pickle", "resume_pickle"])
def test_real_subprocess_prints_one_line_and_exits_2(case_id: str, tmp_path: Path, assets: bi.Assets) -> None:
    """The same cases through ``python -m mridiff.cli`` (the table in docs/reliability.md is made this way)."""
    inv = bi.prepare(bi.CASES_BY_ID[case_id], tmp_path, assets)
    before = bi.snapshot(inv.out_dir)  # resume_pickle plants out/checkpoints/last.ckpt
    outcome = bi.run_subprocess(inv, timeout=300)
    assert outcome.exit_code == 2
    assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("mridiff: error: ")
    assert str(inv.subject) in outcome.stderr
    assert bi.snapshot(inv.out_dir) == before
    assert not any(m.exists() for m in inv.watch)

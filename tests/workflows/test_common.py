"""Slice ranges and the inference log shared by the file workflows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from mridiff.workflows.common import InferenceLog, SliceRange, log_name, parse_slices


@pytest.mark.parametrize(("text", "count", "want"), [("1:3", 5, [1, 2]), ("3:", 5, [3, 4]), (":2", 5, [0, 1]),
                                                     ("2:99", 4, [2, 3]), (" 0 : 1 ", 3, [0])])
def test_slice_ranges_select_like_python(text: str, count: int, want: list[int]) -> None:
    assert parse_slices(text).indices(count) == want


@pytest.mark.parametrize("text", ["3", "a:b", "1:2:3", "-1:2", "4:2", "2:2"])
def test_bad_slice_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="START"):
        parse_slices(text)


def test_a_range_past_the_volume_is_an_error() -> None:
    with pytest.raises(ValueError, match="selects no slice of a volume with 3"):
        SliceRange(3, None).indices(3)


def test_log_records_what_the_user_sees_without_progress_bars(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "reconstruct.log"
    with InferenceLog(path, "reconstruct", {"seed": 3, "sampler": "ddim"}) as log:
        bar = tqdm(total=4, desc="reconstruct", file=sys.stderr, mininterval=0, miniters=1)
        bar.update(1)
        tqdm.write("mridiff: note: a.h5 is fully sampled", file=sys.stderr)
        bar.update(2)
        print("a.h5: 0.10 s/slice, NFE 2")
        log.keep()
        bar.update(1)
        bar.close()
        print("outputs in out")
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# mridiff reconstruct, started ")
    assert lines[1] == '# settings: {"sampler": "ddim", "seed": 3}'
    assert lines[2:5] == ["mridiff: note: a.h5 is fully sampled", "a.h5: 0.10 s/slice, NFE 2", "outputs in out"]
    assert lines[5].startswith("# finished ") and len(lines) == 6
    assert "%|" not in text and "\r" not in text
    seen = capsys.readouterr()
    assert "outputs in out" in seen.out and "fully sampled" in seen.err  # the user still sees everything
    assert type(sys.stdout).__name__ != "_Tee"  # the streams are restored


def test_log_of_a_run_that_wrote_nothing_is_not_kept_and_reruns_append(tmp_path: Path) -> None:
    path = tmp_path / log_name("augment")
    with pytest.raises(ValueError, match="bad"), InferenceLog(path, "augment", {}):
        print("mridiff: error: bad")
        raise ValueError("bad")
    assert not path.exists()
    for k in range(2):
        with InferenceLog(path, "augment", {"k": k}) as log:
            log.keep()
            print(f"run {k}")
    text = path.read_text()
    assert text.count("# mridiff augment") == 2 and "run 0\n" in text and "run 1\n" in text
    assert log_name("augment", 3) == "augment.rank3.log"

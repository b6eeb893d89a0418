from __future__ import annotations

import numpy as np
import pytest

from data_prep.split import main, read_split, split_files


def make_dir(tmp_path, data_helpers, groups):
    d = tmp_path / "data"
    d.mkdir()
    k = np.ones((1, 4, 4), np.complex64)
    for name, source in groups.items():
        attrs = {"source_volume": source} if source else {}
        data_helpers.write_h5(d / name, k, attrs=attrs)
    return d


GROUPS = {
    "brainA_axial.h5": "brainA",
    "brainA_coronal.h5": "brainA",  # the same volume sliced another way: must stay with brainA_axial
    "brainB.h5": "brainB",
    "brainC.h5": None,
    "brainD.h5": "brainD",
    "brainE.h5": "brainE",
}


def source_of(name):
    return GROUPS[name] or name[:-3]


@pytest.mark.parametrize("seed", range(6))
def test_fraction_split_keeps_volumes_disjoint(tmp_path, data_helpers, seed):
    d = make_dir(tmp_path, data_helpers, GROUPS)
    splits = split_files(sorted(d.glob("*.h5")), val=0.2, test=0.2, seed=seed)
    assert sorted(sum(splits.values(), [])) == sorted(GROUPS)
    vols = {s: {source_of(n) for n in names} for s, names in splits.items()}
    assert not (vols["train"] & vols["val"]) and not (vols["train"] & vols["test"]) and not (vols["val"] & vols["test"])
    assert len(vols["val"]) == 1 and len(vols["test"]) == 1


def test_cli_explicit_names(tmp_path, data_helpers, capsys):
    d = make_dir(tmp_path, data_helpers, GROUPS)
    out = tmp_path / "splits"
    code = main([str(d), "--out", str(out), "--test", "brainA_axial.h5", "brainB", "--val", "brainC.h5"])
    assert code == 0, capsys.readouterr().err
    assert read_split(out / "test.txt") == ["brainA_axial.h5", "brainA_coronal.h5", "brainB.h5"]
    assert read_split(out / "val.txt") == ["brainC.h5"]
    assert read_split(out / "train.txt") == ["brainD.h5", "brainE.h5"]
    before = (out / "train.txt").read_text()
    code = main([str(d), "--out", str(out), "--val", "0.2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "already exists" in err
    assert (out / "train.txt").read_text() == before
    assert main([str(d), "--out", str(out), "--val", "0.2", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--val", "nope.h5"], "no such file"),
        (["--val", "brainB.h5", "--test", "brainB"], "both"),
        (["--val", "0.6", "--test", "0.4"], "training"),
        (["--val", "1.5"], "fraction"),
    ],
)
def test_cli_bad_choices(tmp_path, data_helpers, capsys, argv, problem):
    d = make_dir(tmp_path, data_helpers, GROUPS)
    code = main([str(d), "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()

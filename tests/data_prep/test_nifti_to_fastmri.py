from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset

from data_prep.nifti_to_fastmri import main, prepare_slices
from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.data.nifti import read_nifti

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("coils", "challenge"), [(1, "singlecoil"), (4, "multicoil")])
def test_writes_files_fastmri_reads(nifti_file, tmp_path, capsys, coils, challenge):
    out_dir = tmp_path / "out"
    code, out, err = run([nifti_file, out_dir, "--coils", coils, "--size", 32, "--min-foreground", 0.05], capsys)
    assert code == 0, err
    path = out_dir / "head_t1.h5"
    assert path.is_file() and "wrote" in out
    ds = SliceDataset(out_dir, challenge=challenge)
    info = open_scan(path)
    assert len(ds) == info.num_slices > 0
    targets = []
    for i in range(len(ds)):
        kspace, mask, target, attrs, fname, dataslice = ds[i]
        got = read_slice(info, dataslice)
        assert fname == "head_t1.h5" and mask is None
        expected_shape = (coils, 32, 32) if coils > 1 else (32, 32)
        assert kspace.shape == expected_shape and kspace.dtype == np.complex64
        np.testing.assert_array_equal(got.kspace, kspace)
        np.testing.assert_array_equal(got.target, target)
        assert attrs["encoding_size"] == (32, 32, 1) and attrs["recon_size"] == (32, 32, 1)
        assert (attrs["padding_left"], attrs["padding_right"]) == (0, 32)
        for key in ("max", "norm", "acquisition"):
            assert np.all(info.attrs[key] == attrs[key])
        targets.append(target)
    volume = np.stack(targets)
    assert info.attrs["max"] == pytest.approx(float(volume.max()))
    assert info.attrs["norm"] == pytest.approx(float(np.linalg.norm(volume)), rel=1e-6)
    assert info.acquisition == "AXT1" and info.attrs["simulated"]
    assert "simulated" in json.loads(info.attrs["simulation"])["note"]
    assert info.target_key == ("reconstruction_rss" if coils > 1 else "reconstruction_esc")
    with h5py.File(path, "r") as hf:
        assert not any("patient" in k.lower() or "id" in k.lower() for k in hf.attrs)
        assert ("sens_maps" in hf) == (coils > 1)
        if coils > 1:
            sens = hf["sens_maps"][0]
            assert sens.shape == (coils, 32, 32) and sens.dtype == np.complex64
            np.testing.assert_allclose(np.sum(np.abs(sens) ** 2, axis=0), 1.0, atol=1e-5)


def test_noiseless_target_is_the_prepared_image(nifti_file, tmp_path, capsys):
    code, _, err = run([nifti_file, tmp_path, "--coils", 3, "--size", 32, "--slices-range", "2:6"], capsys)
    assert code == 0, err
    info = open_scan(tmp_path / "head_t1.h5")
    with h5py.File(info.path, "r") as hf:
        src = hf.attrs["source_slice_index"]
    assert list(src) == [2, 3, 4, 5]
    prepared = prepare_slices(read_nifti(nifti_file, canonical=True), 2, 32)
    for j, i in enumerate(src):
        np.testing.assert_allclose(read_slice(info, j).target, prepared.images[i], atol=1e-5)


def test_snr_option_adds_noise(nifti_file, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run([nifti_file, a, "--coils", 2, "--size", 32], capsys)[0] == 0
    assert run([nifti_file, b, "--coils", 2, "--size", 32, "--snr-db", 20], capsys)[0] == 0
    ka = read_slice(open_scan(a / "head_t1.h5"), 1).kspace
    kb = read_slice(open_scan(b / "head_t1.h5"), 1).kspace
    measured = 10 * np.log10(np.mean(np.abs(ka) ** 2) / np.mean(np.abs(kb - ka) ** 2))
    assert measured == pytest.approx(20.0, abs=0.5)


def test_refuses_existing_output(nifti_file, tmp_path, capsys):
    assert run([nifti_file, tmp_path, "--coils", 1, "--size", 16], capsys)[0] == 0
    out = tmp_path / "head_t1.h5"
    before = (out.read_bytes(), os.stat(out).st_mtime_ns)
    code, stdout, err = run([nifti_file, tmp_path, "--coils", 2, "--size", 16], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "already exists" in err and str(out) in err
    assert "Traceback" not in err
    assert (out.read_bytes(), os.stat(out).st_mtime_ns) == before
    assert run([nifti_file, tmp_path, "--coils", 2, "--size", 16, "--overwrite"], capsys)[0] == 0
    assert open_scan(out).multicoil


@pytest.mark.parametrize(
    ("make_bad", "argv_extra", "problem"),
    [
        (lambda p: p.write_bytes(b"not a nifti"), [], "cannot read"),
        (None, ["--slices-range", "x:y"], "slices-range"),
        (None, ["--min-foreground", "1.0", "--slices-range", "0:1"], "foreground"),
    ],
)
def test_bad_input_exits_2_with_one_line(nifti_file, tmp_path, capsys, make_bad, argv_extra, problem):
    src = nifti_file
    if make_bad is not None:
        src = tmp_path / "broken.nii.gz"
        make_bad(src)
    code, _, err = run([src, tmp_path / "o", "--size", 16, *argv_extra], capsys)
    assert code == 2 and err.count("\n") == 1 and problem in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_runs_as_module(nifti_file, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "data_prep.nifti_to_fastmri", str(nifti_file), str(tmp_path), "--coils", "2"]
    res = subprocess.run([*cmd, "--size", "16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([*cmd, "--size", "16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr

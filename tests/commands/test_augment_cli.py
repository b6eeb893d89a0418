"""``mridiff augment`` and ``mridiff audit-samples`` from the command line."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from fastmri.data import SliceDataset

from mridiff.cli import main
from mridiff.workflows.samples import read_sample


@pytest.fixture(scope="module")
def aug_model(tiny_augment_model: Path) -> str:
    return str(tiny_augment_model)


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """(mtime_ns, sha256) of every sample file."""
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted((directory / "samples").iterdir())}


def manifest(directory: Path) -> list[dict[str, str]]:
    with open(directory / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_restart_adds_exactly_the_missing_samples(tmp_path: Path, aug_model: str) -> None:
    out = tmp_path / "syn"
    base = ["augment", "--out", str(out), "--ckpt", aug_model, "--steps", "2", "--batch", "4", "--no-progress"]
    assert main([*base, "--n", "6"]) == 0
    first = snapshot(out)
    assert len(first) == 6 and len(manifest(out)) == 6
    assert all(read_sample(out / "samples" / name).shape == (32, 32) for name in first)
    assert main([*base, "--n", "8"]) == 0
    second = snapshot(out)
    assert len(second) == 8
    assert {k: second[k] for k in first} == first  # untouched: same bytes, same mtimes
    rows = manifest(out)
    assert [int(r["index"]) for r in rows] == list(range(8))
    assert {r["mode"] for r in rows} == {"ddim-eta0"} and {r["steps"] for r in rows} == {"2"}
    # sample 7 is reproducible: a fresh run in one batch of 8 gives the same image
    fresh = tmp_path / "fresh"
    assert main([*base[:2], str(fresh), *base[3:7], "--batch", "8", "--no-progress", "--n", "8"]) == 0
    name = "sample_000007.nii.gz"
    assert np.allclose(read_sample(fresh / "samples" / name), read_sample(out / "samples" / name), atol=1e-4)


@pytest.mark.parametrize(("coils", "challenge"), [(4, "multicoil"), (1, "singlecoil")])
def test_with_kspace_is_readable_by_fastmri(tmp_path: Path, aug_model: str, coils: int, challenge: str) -> None:
    out = tmp_path / "syn"
    assert main(["augment", "--n", "2", "--out", str(out), "--ckpt", aug_model, "--steps", "2", "--with-kspace",
                 "--coils", str(coils), "--acceleration", "4", "--no-progress"]) == 0
    dataset = SliceDataset(out / "samples", challenge=challenge)
    assert len(dataset) == 2
    kspace, _, target, attrs, fname, _ = dataset[0]
    assert kspace.shape == ((coils, 32, 32) if coils > 1 else (32, 32)) and target.shape == (32, 32)
    assert attrs["acceleration"] == 4 and fname == "sample_000000.h5"
    # the target is the RSS / magnitude of the stored, fully sampled k-space
    coil_images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    mag = np.sqrt((np.abs(coil_images) ** 2).sum(0)) if coils > 1 else np.abs(coil_images)
    assert np.allclose(mag, target, rtol=1e-4, atol=1e-5 * float(target.max()))


def test_user_errors_are_one_line_with_exit_2(tmp_path: Path, aug_model: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def fails(argv: list[str], needle: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err

    fails(["augment", "--n", "0", "--out", str(tmp_path / "a")], "must be positive")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails(["augment", "--n", "2", "--out", str(blocker / "sub"), "--ckpt", aug_model], "cannot create output directory")
    fails(["augment", "--n", "2", "--out", str(tmp_path / "b"), "--format", "png", "--with-kspace"], "--format h5")
    fails(["augment", "--n", "2", "--out", str(tmp_path / "c"), "--coils", "4"], "--with-kspace")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing was created
    out = tmp_path / "d"
    assert main(["augment", "--n", "1", "--out", str(out), "--ckpt", aug_model, "--steps", "2", "--no-progress"]) == 0
    before = snapshot(out)
    capsys.readouterr()
    fails(["augment", "--n", "3", "--out", str(out), "--ckpt", aug_model, "--steps", "3"], "another steps")
    assert snapshot(out) == before and len(manifest(out)) == 1

"""Memorisation audit: SSIM as skimage computes it, flags for copies, passes for new images, CLI outputs."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from mridiff.cli import main
from mridiff.workflows.audit import audit, load_training_slices, prepare, ssim_against
from mridiff.workflows.samples import AugmentOptions, sample_name, write_sample


def brain_like(rng: np.random.Generator, n: int = 48) -> np.ndarray:
    """A smooth random ellipse 'slice' with internal structure, zero background."""
    yy, xx = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    a, b, f, g = rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9), rng.uniform(2, 8), rng.uniform(2, 8)
    inside = (xx / a) ** 2 + (yy / b) ** 2 < 1
    return np.where(inside, 1.0 + 0.5 * np.cos(f * xx + 1.0) * np.sin(g * yy + f), 0.0).astype(np.float32)


@pytest.fixture
def training_file(tmp_path: Path, data_helpers: SimpleNamespace) -> tuple[Path, np.ndarray]:
    """A fully sampled single-coil fastMRI file of 5 'slices' and its targets."""
    rng = np.random.default_rng(0)
    images = np.stack([brain_like(rng) for _ in range(5)])
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    path = data_helpers.write_h5(tmp_path / "train.h5", kspace.astype(np.complex64), target=images)
    return path, images


def test_batched_ssim_matches_skimage() -> None:
    rng = np.random.default_rng(1)
    x = prepare(brain_like(rng), 32)
    refs = np.stack([prepare(brain_like(rng), 32) for _ in range(3)] + [x * 0.9 + 0.05])
    ours = ssim_against(x, refs)
    for r, value in zip(refs, ours, strict=True):
        expected = structural_similarity(x, r, data_range=max(float(x.max()), float(r.max())))
        assert value == pytest.approx(expected, abs=1e-6)


def test_audit_flags_copies_and_passes_new_images(training_file: tuple[Path, np.ndarray]) -> None:
    labels, train = load_training_slices([training_file[0]])
    assert train.shape == (5, 64, 64) and labels[2] == "train.h5:2"
    rng = np.random.default_rng(7)
    copy, mirrored = training_file[1][2], training_file[1][3][:, ::-1]
    samples = np.stack([prepare(img) for img in (copy, 1.7 * mirrored, brain_like(rng), rng.random((48, 48)))])
    rows = audit(samples, ["copy", "mirrored", "new", "noise"], train, labels)
    assert [r.flagged for r in rows] == [True, True, False, False]
    assert rows[0].nearest_ssim == "train.h5:2" and rows[0].ssim > 0.99 and rows[0].l2 < 0.02
    assert rows[1].nearest_ssim == "train.h5:3 (flipped)"  # intensity scale does not hide a copy
    assert rows[2].ssim < 0.95 and rows[3].ssim < 0.2


def test_audit_cli_writes_csv_and_png(tmp_path: Path, training_file: tuple[Path, np.ndarray],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    samples = tmp_path / "syn"
    (samples / "samples").mkdir(parents=True)
    opts = AugmentOptions(n=2, fmt="png")
    write_sample(samples / sample_name(0, "png"), training_file[1][1], opts, seed=0)
    write_sample(samples / sample_name(1, "png"), brain_like(np.random.default_rng(3)), opts, seed=1)
    assert main(["audit-samples", str(samples), "--train", str(training_file[0])]) == 0
    assert "1 of 2 sample(s) flagged" in capsys.readouterr().out
    with open(samples / "audit.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["sample"], r["flagged"]) for r in rows] == [("sample_000000.png", "1"), ("sample_000001.png", "0")]
    assert rows[0]["nearest_ssim"] == "train.h5:1"
    with Image.open(samples / "audit.png") as png:
        assert png.size == (3 * 128, 2 * (128 + 14))  # two pairs, three panels, enlarged to 128 px
    assert main(["audit-samples", str(samples), "--train", str(training_file[0])]) == 2  # no silent overwrite
    assert main(["audit-samples", str(tmp_path / "missing"), "--train", str(training_file[0])]) == 2


def test_training_slices_from_an_image_bank(tmp_path: Path) -> None:
    import h5py

    from mridiff.workflows.audit import load_training_slices

    images = np.random.default_rng(0).integers(0, 1020, (3, 32, 32)).astype(np.uint16)
    with h5py.File(tmp_path / "train_images.h5", "w") as fh:
        fh["images"] = images
        fh["names"] = np.array([b"glioma/1.jpg", b"glioma/2.jpg", b"pituitary/9.jpg"])
    labels, slices = load_training_slices([tmp_path / "train_images.h5"], 16)
    assert labels == ["train_images.h5:glioma/1.jpg", "train_images.h5:glioma/2.jpg", "train_images.h5:pituitary/9.jpg"]
    assert slices.shape == (3, 16, 16) and np.isfinite(slices).all()

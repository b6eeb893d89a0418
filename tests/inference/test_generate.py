"""Augmentation API: per-sample reproducibility, file formats and the restartable directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mridiff.errors import InputError
from mridiff.inference.generate import SampleGenerator, sample_seed
from mridiff.workflows.augment import augment_dir
from mridiff.workflows.samples import (
    MANIFEST,
    PNG_WHITE,
    AugmentOptions,
    read_manifest,
    read_sample,
    sample_name,
    write_sample,
)


@pytest.fixture(scope="module")
def generator(tiny_augment_model: Path) -> SampleGenerator:
    """An untrained tiny unconditional U-Net at 32x32, exported like a trained one."""
    return SampleGenerator(tiny_augment_model, device="cpu")


def test_sample_does_not_depend_on_its_batch(generator: SampleGenerator) -> None:
    seeds = [sample_seed(7, i) for i in range(3)]
    together = generator.generate(seeds, steps=3)
    alone = generator.generate(seeds[1:2], steps=3)
    assert together.shape == (3, 32, 32) and together.dtype == np.float32
    assert (together >= 0).all()
    assert np.allclose(together[1], alone[0], rtol=1e-4, atol=1e-4 * float(np.abs(together).max()))
    assert not np.allclose(together[0], together[1])
    assert len({sample_seed(0, i) for i in range(100)} | {sample_seed(1, i) for i in range(100)}) == 200


@pytest.mark.parametrize("fmt", ["nifti", "png", "h5"])
def test_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    image = np.random.default_rng(0).uniform(0, 1.5, (24, 32)).astype(np.float32)
    path = tmp_path / Path(sample_name(3, fmt)).name
    write_sample(path, image, AugmentOptions(n=1, fmt=fmt), seed=1)
    back = read_sample(path)
    assert back.shape == (24, 32)
    tol = PNG_WHITE / 65535 if fmt == "png" else 1e-6  # 16-bit quantisation
    assert np.allclose(back, image, atol=tol)


def test_options_are_checked() -> None:
    for opts, needle in ((AugmentOptions(n=0), "--n"), (AugmentOptions(n=2, fmt="png", with_kspace=True), "h5"),
                         (AugmentOptions(n=2, seed=-1), "--seed"), (AugmentOptions(n=2, coils=0), "--coils")):
        with pytest.raises(InputError, match=needle):
            opts.validate()


def test_directory_grows_refuses_other_settings_and_replaces_missing_files(tmp_path: Path,
                                                                            generator: SampleGenerator) -> None:
    out = tmp_path / "syn"
    opts = AugmentOptions(n=3, steps=2, batch=2, fmt="png", progress=False)
    assert augment_dir(out, generator, opts)["written"] == 3
    rows = read_manifest(out / MANIFEST)
    assert [r["file"] for r in rows] == [sample_name(i, "png") for i in range(3)]
    assert {r["steps"] for r in rows} == {"2"} and rows[0]["checkpoint_sha256"] == generator.sha256
    with pytest.raises(InputError, match="steps"):
        augment_dir(out, generator, AugmentOptions(n=4, steps=3, fmt="png", progress=False))
    with pytest.raises(InputError, match="seed"):
        augment_dir(out, generator, AugmentOptions(n=4, steps=2, seed=5, fmt="png", progress=False))
    lost = out / sample_name(1, "png")
    before = read_sample(lost)
    lost.unlink()
    summary = augment_dir(out, generator, AugmentOptions(n=3, steps=2, fmt="png", progress=False))
    assert summary == {"written": 1, "kept": 2, "total": 3, "manifest": str(out / MANIFEST),
                       "contact_sheet": str(out / "contact_sheet.png")}
    # the same seed gives the same sample again (up to float rounding across batch sizes, one 16-bit PNG level)
    assert np.allclose(read_sample(lost), before, atol=2 * PNG_WHITE / 65535)

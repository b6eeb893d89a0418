"""``mridiff demo``: the bundled real test slices, the plumbing (tiny random model), the labels and attribution."""

from __future__ import annotations

import fnmatch
import json
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pytest

from mridiff.errors import InputError
from mridiff.prep import cheng
from mridiff.workflows.demo import (
    DEMO_DATA,
    DEMO_SCAN,
    DemoOptions,
    demo_scan,
    describe,
    format_table,
    load_demo_data,
    run_demo,
)

LABEL = "real clinical images (test split), simulated k-space"
DEMO_NPZ = Path(str(resources.files("mridiff") / "data" / DEMO_DATA))


@pytest.fixture(scope="module")
def flat_recon_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random recon model without attention: the demo's 256x256 slices in a second, not a minute (plumbing only)."""
    import torch

    from mridiff.models.unet import ConditionalUNet, UNetConfig
    from mridiff.training.checkpoint import export_model
    from tests.helpers import tiny_meta

    cfg = UNetConfig(channels=(8, 8, 8), attention_levels=(False, False, False), num_head_channels=8,
                     norm_num_groups=4)
    torch.manual_seed(0)
    return export_model(ConditionalUNet(cfg), tiny_meta(cfg=cfg), tmp_path_factory.mktemp("flat") / "m.safetensors")


def test_bundled_demo_slices_are_small_real_test_slices() -> None:
    assert DEMO_NPZ.stat().st_size < 512 * 1024
    with np.load(DEMO_NPZ) as raw:
        assert raw["images"].dtype == np.float16 and raw["images"].shape == (4, 256, 256)
        names = [str(n) for n in raw["names"]]
    assert all(n.split("/")[0] in cheng.TEST_FOLDERS for n in names) and len(set(names)) == 4
    data = load_demo_data()
    assert data.label == LABEL and "CC BY 4.0" in data.licence and "10.6084/m9.figshare.1512427" in data.licence
    assert data.images.dtype == np.float32 and 0 <= data.images.min() and data.images.max() <= 1
    assert data.images.max() > 0.5  # real slices, not an empty or rescaled placeholder
    assert data.source_indices.tolist() == [int(Path(n).stem) for n in names]


@pytest.mark.skipif(not cheng.default_source().is_dir(), reason="Cheng source images not available")
def test_demo_slices_and_scan_are_prepared_as_prepare_cheng(tmp_path: Path) -> None:
    """The stored slices are ``prepare cheng``'s 256x256 images, and the demo scan is its multi-coil test file."""
    src = cheng.default_source()
    with np.load(DEMO_NPZ) as raw:
        names = [str(n) for n in raw["names"]]
        stored = raw["images"].astype(np.float32)
    assert set(names) <= set(cheng.make_split(src).test)
    for name, image in zip(names, stored, strict=True):
        np.testing.assert_array_equal(image, cheng.load_slice(src / name, 256))  # float16 holds them exactly
    scan = demo_scan(tmp_path, overwrite=False)
    cheng.write_eval_files(tmp_path / "prepared", src, names[:1], "test", 256, 8, 30.0, 0, {}, overwrite=False)
    prepared = tmp_path / "prepared" / "multicoil_test" / cheng.out_name(names[0])
    with h5py.File(scan, "r") as demo, h5py.File(prepared, "r") as ref:
        np.testing.assert_array_equal(demo["kspace"][0], ref["kspace"][0])
        assert demo.attrs["acquisition"] == ref.attrs["acquisition"]


def test_demo_writes_every_output_and_a_labelled_table(flat_recon_model: Path, tmp_path: Path) -> None:
    opts = DemoOptions(out=tmp_path / "demo", steps=1, samples=2, ckpt=str(flat_recon_model), progress=False,
                       accelerations=(4,))
    rows = run_demo(opts)
    assert [r["acceleration"] for r in rows] == [4]
    with h5py.File(opts.out / DEMO_SCAN, "r") as fh:
        assert fh["kspace"].shape == (4, 8, 256, 256)  # simulated 8-coil scan of the four slices
    stem = Path(DEMO_SCAN).stem
    for acc in opts.accelerations:
        out = opts.out / f"x{acc}"
        assert (out / "reconstructions" / DEMO_SCAN).is_file()
        assert (out / "nifti" / f"{stem}.nii.gz").is_file()
        assert (out / "nifti" / f"{stem}_std.nii.gz").is_file()
        assert (out / "figures" / f"{stem}.png").is_file()
    summary = json.loads((opts.out / "metrics.json").read_text())
    assert summary["label"] == LABEL and "CC BY 4.0" in summary["licence"]
    assert summary["sampling"] == {"sampler": "ddim", "steps": 1, "dc": "hard", "samples": 2}
    table = format_table(rows, LABEL)
    assert table.splitlines()[0] == LABEL and "zero-filled" in table and table.count("\n") == 3
    for r in rows:
        assert r["zero_filled"]["PSNR"] > 0 and r["mridiff"]["SSIM"] <= 1
    with pytest.raises(InputError):  # a second run refuses to overwrite without --overwrite
        run_demo(opts)


def test_demo_slices_and_their_attribution_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mridiff"]
    for file in (f"data/{DEMO_DATA}", "data/README.md"):
        assert (DEMO_NPZ.parent.parent / file).is_file() and any(fnmatch.fnmatch(file, p) for p in patterns), file
    assert "CC BY 4.0" in (DEMO_NPZ.parent / "README.md").read_text()


def test_demo_uses_the_default_preset_and_says_what_it_shows() -> None:
    opts = DemoOptions()
    sampling = opts.sampling()
    assert (sampling.sampler.value, sampling.steps, sampling.dc.value) == ("ddim", 10, "hard")  # balanced
    lines = describe(opts)
    assert lines[0].startswith(f"mridiff demo: {LABEL}") and "meningioma/" in lines[0] and "256x256" in lines[0]
    assert "preset balanced: DDIM-10 + hard" in lines[1]
    assert "CC BY 4.0" in lines[2] and "Cheng" in lines[2]
    fast = DemoOptions(preset="fast", dc="soft").sampling()
    assert (fast.steps, fast.dc.value) == (5, "soft")


def test_demo_command_prints_labels_attribution_and_both_accelerations(flat_recon_model: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from mridiff.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--ckpt", str(flat_recon_model), "--steps", "1", "--samples", "1",
                 "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"mridiff demo: {LABEL}") and "DDIM-1 + hard data consistency, K=1" in lines[1]
    assert "CC BY 4.0" in lines[2] and "doi:10.6084/m9.figshare.1512427" in lines[2]
    table = lines.index(f"results ({LABEL}):")
    assert [line.split("x |")[0].strip() for line in lines[table + 3:table + 5]] == ["4", "8"]
    assert (out / "x8" / "figures" / f"{Path(DEMO_SCAN).stem}.png").is_file()
    assert main(["demo", "--out", str(out), "--ckpt", str(flat_recon_model), "--steps", "1", "--no-progress"]) == 2

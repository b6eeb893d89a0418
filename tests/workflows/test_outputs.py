"""What the file workflows write beside their results (issue 14 items 10, 13, 14): the inference log, panels with
colour bars and PSNR/SSIM, ``--slices``, the super-resolution metrics and padding, the augmentation contact sheet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mridiff.cli import main
from mridiff.io.figures import COLOURBAR_WIDTH
from mridiff.workflows import panels


@pytest.fixture
def spy_panels(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the arguments of every panel drawn (and still draw it)."""
    calls: list[dict[str, Any]] = []
    real = panels.panel_png

    def spy(rows: Any, labels: Any, path: Any, **kwargs: Any) -> None:
        calls.append({"rows": rows, "labels": list(labels), **kwargs})
        real(rows, labels, path, **kwargs)

    monkeypatch.setattr(panels, "panel_png", spy)
    return calls


def _recon(scan: Path, model: Path, out: Path, *extra: str) -> int:
    return main(["reconstruct", str(scan), "--ckpt", str(model), "--sampler", "ddim", "--steps", "2",
                 "--batch-size", "2", "--out", str(out), *extra])


def test_reconstruct_log_panel_and_slices(tiny_dataset: dict[str, Path], tmp_path: Path, tiny_recon_model: Path,
                                          spy_panels: list[dict[str, Any]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    scan = Path(shutil.copy(next(tiny_dataset["singlecoil"].glob("*.h5")), tmp_path / "a.h5"))
    assert _recon(scan, tiny_recon_model, tmp_path / "full") == 0  # with progress bars
    seen = capsys.readouterr()
    assert "%|" in seen.err  # the user saw bars ...
    log = (tmp_path / "full" / "reconstruct.log").read_text()
    assert "%|" not in log and "\r" not in log  # ... the log has none
    settings = json.loads(log.splitlines()[1].removeprefix("# settings: "))
    assert settings["options"]["seed"] == 0 and settings["provenance"]["model"]["sha256"]
    assert "mridiff: note: " in log and "fully sampled" in log and "a.h5: " in log and "s/slice" in log
    # the panel: colour bars, PSNR/SSIM on the zero-filled and mridiff cells, no std column for K = 1
    call = spy_panels[-1]
    assert call["colourbars"] and call["labels"][:4] == ["zero-filled", "mridiff", "target", "|error| x4"]
    assert all(row[4] is None for row in call["rows"])  # std: dropped
    assert all("PSNR" in cell and "SSIM" in cell for row in call["annotations"] for cell in row[:2])
    width = Image.open(tmp_path / "full" / "figures" / "a.png").size[0]
    assert width == 4 * (32 + COLOURBAR_WIDTH)

    assert _recon(scan, tiny_recon_model, tmp_path / "part", "--slices", "1:3", "--no-progress") == 0
    with h5py.File(tmp_path / "full" / "reconstructions" / "a.h5") as full, \
            h5py.File(tmp_path / "part" / "reconstructions" / "a.h5") as part:
        assert part["reconstruction"].shape[0] == 2
        assert np.array_equal(part["reconstruction"][()], full["reconstruction"][1:3])  # same slices, same bits
    whole, piece = (nib.load(tmp_path / run / "nifti" / "a.nii.gz") for run in ("full", "part"))
    assert np.allclose(piece.affine @ [0, 0, 0, 1], whole.affine @ [0, 0, 1, 1])  # it lies where slice 1 lies
    entry = json.loads((tmp_path / "part" / "metrics.json").read_text())["files"][0]
    assert entry["slice_range"] == [1, 3] and entry["slices"] == 2 and entry["volume_slices"] >= 3
    assert _recon(scan, tiny_recon_model, tmp_path / "none", "--slices", "40:") == 2
    assert "selects no slice" in capsys.readouterr().err


def test_reconstruct_panel_without_target_has_no_empty_columns(fastmri_mock_dataset: dict[str, Path],
                                                               tmp_path: Path, tiny_recon_model: Path,
                                                               spy_panels: list[dict[str, Any]]) -> None:
    scan = next(fastmri_mock_dataset["singlecoil_test"].glob("*.h5"))  # its own mask, no target
    assert _recon(scan, tiny_recon_model, tmp_path / "out", "--samples", "2", "--no-progress") == 0
    call = spy_panels[-1]
    assert all(row[2] is None and row[3] is None and row[4] is not None for row in call["rows"])
    assert not any(cell for row in call["annotations"] for cell in row)  # nothing to score against
    with h5py.File(scan) as fh:
        width = fh["kspace"].shape[-1]
    png = Image.open(tmp_path / "out" / "figures" / f"{scan.stem}.png")
    assert png.size[0] == 3 * (width + COLOURBAR_WIDTH)  # zero-filled, mridiff, std


def _nifti(helpers: SimpleNamespace, path: Path, shape: tuple[int, int, int]) -> Path:
    nib.save(nib.Nifti1Image(helpers.blob_volume(shape), helpers.affine), path)
    return path


def test_superres_writes_panel_metrics_and_log_and_pads_odd_sizes(tmp_path: Path, sr_model: str,
                                                                  data_helpers: SimpleNamespace,
                                                                  spy_panels: list[dict[str, Any]],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = _nifti(data_helpers, tmp_path / "hr.nii.gz", (18, 18, 3))  # 18 is no multiple of 4: padded to 20
    out = tmp_path / "res" / "sr.nii.gz"
    assert main(["superres", str(src), "--scale", "4", "--from-highres", "--ckpt", sr_model, "--steps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("mridiff: note:")]
    assert len(notes) == 1 and "zero-padded to (20, 20)" in notes[0]
    img = nib.load(out)
    assert img.shape == (18, 18, 3) and np.allclose(img.affine, data_helpers.affine, atol=1e-6)
    entry = json.loads((tmp_path / "res" / "metrics.json").read_text())["files"][0]
    assert entry["file"] == "sr.nii.gz" and entry["size_adjustment"]["padded_to"] == [20, 20]
    assert all(np.isfinite(entry[m]["PSNR"]) for m in ("mridiff", "sinc", "bicubic"))
    call = spy_panels[-1]
    assert call["labels"][:3] == ["sinc", "bicubic", "mridiff"] and call["colourbars"]
    assert all("PSNR" in cell for row in call["annotations"] for cell in row[:3])
    assert Image.open(tmp_path / "res" / "sr.png").size[0] == 5 * (18 + COLOURBAR_WIDTH)
    assert "x4 super-resolution" in (tmp_path / "res" / "superres.log").read_text()


def test_superres_slices_and_reference(tmp_path: Path, sr_model: str, data_helpers: SimpleNamespace,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    lr = _nifti(data_helpers, tmp_path / "lr.nii.gz", (16, 16, 4))
    ref = _nifti(data_helpers, tmp_path / "ref.nii.gz", (32, 32, 4))
    base = ["--ckpt", sr_model, "--steps", "2", "--no-progress"]
    assert main(["superres", str(lr), *base, "--out", str(tmp_path / "full" / "sr.nii.gz")]) == 0
    assert "sinc" not in json.loads((tmp_path / "full" / "metrics.json").read_text())["files"][0]  # no truth
    assert main(["superres", str(lr), *base, "--slices", "1:3", "--reference", str(ref),
                 "--out", str(tmp_path / "part" / "sr.nii.gz")]) == 0, capsys.readouterr().err
    whole, piece = nib.load(tmp_path / "full" / "sr.nii.gz"), nib.load(tmp_path / "part" / "sr.nii.gz")
    assert piece.shape == (32, 32, 2)
    assert np.array_equal(np.asarray(piece.dataobj), np.asarray(whole.dataobj)[..., 1:3])
    assert np.allclose(piece.affine @ [0, 0, 0, 1], whole.affine @ [0, 0, 1, 1])
    entry = json.loads((tmp_path / "part" / "metrics.json").read_text())["files"][0]
    assert entry["reference"] == str(ref) and entry["slice_range"] == [1, 3] and "PSNR" in entry["mridiff"]


def test_augment_writes_contact_sheet_and_log(tmp_path: Path, tiny_augment_model: Path) -> None:
    out = tmp_path / "syn"
    assert main(["augment", "--n", "3", "--out", str(out), "--ckpt", str(tiny_augment_model), "--steps", "2",
                 "--format", "png", "--no-progress"]) == 0
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] == 2 * 32  # ceil(sqrt(3)) = 2 tiles per row
    log = (out / "augment.log").read_text()
    assert "# settings: " in log and "3 new sample(s)" in log


def test_training_data_hints_name_the_installed_commands(tmp_path: Path) -> None:
    from mridiff.commands.prepare import TOOLS
    from mridiff.errors import InputError
    from mridiff.training.data import ImageBankDataset, list_files

    with pytest.raises(InputError) as missing:
        list_files(tmp_path / "nothing")
    (tmp_path / "bank.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError) as bank:
        ImageBankDataset(tmp_path / "bank.h5", make_example=lambda *a: {})
    for exc, tool in ((missing, "default-dataset"), (bank, "cheng")):
        assert f"`mridiff prepare {tool}`" in exc.value.message() and tool in TOOLS
        assert "python -m data_prep" not in exc.value.message()


def test_superres_and_augment_progress_ticks_once_per_network_call(tmp_path: Path, sr_model: str,
                                                                   tiny_augment_model: Path,
                                                                   data_helpers: SimpleNamespace,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from mridiff.inference import pipeline

    bars: list[Any] = []
    shown: list[bool] = []
    real = pipeline.tqdm

    def recording(*args: Any, **kwargs: Any) -> Any:
        bars.append(real(*args, **kwargs))
        shown.append(not bars[-1].disable)  # (a closed bar reads as disabled)
        return bars[-1]

    monkeypatch.setattr(pipeline, "tqdm", recording)
    lr = _nifti(data_helpers, tmp_path / "lr.nii.gz", (16, 16, 3))
    assert main(["superres", str(lr), "--ckpt", sr_model, "--sampler", "ddim", "--steps", "3", "--batch-size", "2",
                 "--out", str(tmp_path / "sr.nii.gz")]) == 0
    assert main(["augment", "--n", "5", "--out", str(tmp_path / "syn"), "--ckpt", str(tiny_augment_model),
                 "--steps", "4", "--batch", "2"]) == 0
    sr_bar, aug_bar = bars
    assert (sr_bar.total, sr_bar.n, sr_bar.unit) == (3 * 2, 3 * 2, "call")  # 3 calls x 2 chunks of slices
    assert (aug_bar.total, aug_bar.n, aug_bar.unit) == (4 * 3, 4 * 3, "call")  # 4 calls x 3 chunks of samples
    assert shown == [True, True]  # on screen; the ETA is tqdm's, from the per-call rate

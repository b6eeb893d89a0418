"""Device selection: a wrong or unusable ``--device`` is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from mridiff.cli import main
from mridiff.errors import InputError
from mridiff.inference.model import pick_device


def _no_driver() -> bool:
    warnings.warn("CUDA initialization: Found no NVIDIA driver on your system. Please check that you have an NVIDIA "
                  "GPU and installed a driver from http://www.nvidia.com/Download/index.aspx", UserWarning,
                  stacklevel=2)
    return False


@pytest.fixture
def scan(tiny_dataset: dict[str, Path]) -> Path:
    return next(tiny_dataset["singlecoil"].glob("*.h5"))


@pytest.mark.parametrize(("device", "gpus", "needle"), [
    ("cuda", None, "not usable"),            # no GPU at all
    ("cuda", "no-driver", "no nvidia driver"),
    ("cuda:7", 1, "has 1 gpu"),               # a GPU index the machine does not have
    ("foo", 1, "not a device name"),
    ("cuda:x", 1, "not a device name"),
    ("meta", 1, "not supported"),
])
def test_bad_device_is_one_line_and_nonzero(device: str, gpus: int | str | None, needle: str, scan: Path,
                                            tiny_recon_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if gpus == "no-driver":
        monkeypatch.setattr(torch.cuda, "is_available", _no_driver)
    else:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus is not None)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus or 0)
    rc = main(["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--device", device, "--steps", "1",
               "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mridiff: error: device "), err
    assert needle in lines[0].lower() and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_device_error_comes_before_the_model_is_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a device name"):
        from mridiff.inference.model import load_model

        load_model(tmp_path / "missing.safetensors", "recon", "foo")


def test_auto_and_cpu_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", _no_driver)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the driver warning is not shown for the automatic choice
        assert pick_device(None).type == "cpu" and pick_device("auto").type == "cpu"
    assert pick_device("cpu") == torch.device("cpu") and pick_device(torch.device("cpu")).type == "cpu"


def test_device_failing_on_first_use_is_one_line(scan: Path, tiny_recon_model: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A GPU that is listed but fails when the model moves to it (broken driver, full memory)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def broken_to(self: torch.nn.Module, *args: object, **kwargs: object) -> torch.nn.Module:
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore detail")

    monkeypatch.setattr(torch.nn.Module, "to", broken_to)
    rc = main(["reconstruct", str(scan), "--ckpt", str(tiny_recon_model), "--device", "cuda", "--steps", "1",
               "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "no kernel image" in err and "--device cpu" in err, err

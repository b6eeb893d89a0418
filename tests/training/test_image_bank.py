"""Training from an image bank of real magnitude slices, k-space simulated on the fly (data.images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep.cheng import main as prepare_cheng
from mridiff.config import config_from_dict
from mridiff.tasks.registry import example_builder
from mridiff.training.data import ImageBankDataset
from mridiff.training.run import train
from tests.helpers import TINY_MODEL, fake_cheng_source


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cheng")
    src = fake_cheng_source(root / "src", per_folder=6, side=64)
    assert prepare_cheng([str(root / "out"), "--source", str(src), "--size", "32", "--coils", "4"]) == 0
    return root / "out"


def bank_config(bank: Path, out: Path, task: str = "recon", **data: object) -> dict[str, object]:
    model = dict(TINY_MODEL)
    if task == "augment":
        model.update(cond_channels=0, state_channels=1)
    return {"task": task, "out_dir": str(out),
            "data": {"images": str(bank / "train_images.h5"), "val_root": str(bank / "singlecoil_val"), **data},
            "model": model, "masks": {"kinds": ["random"], "accelerations": [4]},
            "train": {"batch_size": 2, "max_steps": 2, "ckpt_every": 1, "val_every": 0, "precision": "32-true",
                      "num_workers": 0, "log_every": 1}}


@pytest.mark.parametrize("task", ["recon", "sr", "augment"])
def test_examples_have_the_task_shapes_and_are_seeded(bank: Path, task: str) -> None:
    cfg = config_from_dict(bank_config(bank, Path("unused"), task))
    make = example_builder(cfg)
    a = ImageBankDataset(bank / "train_images.h5", make, seed=3, patch=16, remap=True, geometry=True,
                         coils=(1, 4))
    b = ImageBankDataset(bank / "train_images.h5", make, seed=3, patch=16, remap=True, geometry=True,
                         coils=(1, 4))
    ex_a, ex_b = a[1], b[1]
    assert ex_a["target"].shape[-2:] == (16, 16)
    for key in ex_a:
        torch.testing.assert_close(ex_a[key], ex_b[key])
    assert all(torch.isfinite(v.abs()).all() for v in ex_a.values())
    assert len(a) == 10  # 2 x (6 - 1) training slices


def test_resampled_bank_and_bad_file(bank: Path, tmp_path: Path) -> None:
    cfg = config_from_dict(bank_config(bank, Path("unused"), "augment"))
    ds = ImageBankDataset(bank / "train_images.h5", example_builder(cfg), size=16)
    assert ds[0]["target"].shape == (16, 16) and ds.image_size == [16, 16]
    (tmp_path / "bad.h5").write_bytes(b"nope")
    from mridiff.errors import InputError

    with pytest.raises(InputError, match="not an image bank"):
        ImageBankDataset(tmp_path / "bad.h5", example_builder(cfg))


def test_training_on_the_bank_records_its_domain(bank: Path, tmp_path: Path) -> None:
    cfg = config_from_dict(bank_config(bank, tmp_path / "run", patch=16, intensity_remap=True, geometry=True))
    out = train(cfg, accelerator="cpu", progress=False)
    assert out is not None and out.is_file()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["domain"] == {"matrix": [16, 48], "contrast": "any"}
    assert meta["training"]["image_size"] == [32, 32]
    assert meta["training"]["data_root"].endswith("train_images.h5")
    assert np.isfinite(meta["training"]["loss_tail"][-1][1])


def test_train_set_overrides_any_field_and_rejects_bad_ones(tiny_dataset: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from mridiff.cli import main

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(bank_config(Path("unused"), tmp_path / "run")))
    assert main(["train", "-c", str(cfg), "--set", "data.nope=1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown config key 'data.nope'" in err[0]
    assert main(["train", "-c", str(cfg), "--set", "train.lr=abc"]) != 0
    assert "train.lr" in capsys.readouterr().err
    root = tiny_dataset["singlecoil"]
    assert main(["train", "-c", str(cfg), "--set", "data.images=null", "--set", f"data.root={root}",
                 "--set", "data.val_root=null", "--set", "train.lr=5e-4", "--no-progress"]) == 0
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["training"]["config"]["train"]["lr"] == 5e-4
    assert meta["domain"]["contrast"] == "T1"


def test_out_of_domain_warning_uses_the_trained_range_and_never_echoes_headers(tmp_path: Path) -> None:
    import warnings
    from types import SimpleNamespace

    from mridiff.workflows.recon import _warn_out_of_domain

    scan = SimpleNamespace(path=tmp_path / "a.h5", encoded_size=(320, 320, 1), recon_size=(320, 320),
                           acquisition="AXT2 Jane Doe")
    agnostic = {"domain": {"matrix": [128, 384], "contrast": "any"}, "training": {"image_size": [256, 256]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_out_of_domain(scan, agnostic)  # 320² T2 is inside a contrast-agnostic 128-384 model's domain
    big = SimpleNamespace(path=tmp_path / "b.h5", encoded_size=(512, 512, 1), recon_size=(512, 512),
                          acquisition="AXT2 Jane Doe")
    t1_only = {"domain": {"matrix": [256, 256], "contrast": "T1"}, "training": {"image_size": [256, 256]}}
    with pytest.warns(UserWarning) as record:
        _warn_out_of_domain(big, t1_only)
    text = " ".join(str(w.message) for w in record)
    assert "outside the model's training range" in text and "T1-weighted" in text
    assert "Jane" not in text and "AXT2" not in text


def test_init_from_an_exported_model_carries_weights_and_totals(tiny_dataset: dict[str, Path],
                                                                tmp_path: Path) -> None:
    from mridiff.errors import InputError
    from mridiff.training.checkpoint import load_exported
    from mridiff.training.module import DiffusionModule
    from mridiff.training.run import continue_from
    from tests.helpers import tiny_config

    first = train(tiny_config(tiny_dataset["singlecoil"], tmp_path / "a"), accelerator="cpu", progress=False)
    assert first is not None
    cfg = tiny_config(tiny_dataset["singlecoil"], tmp_path / "b")
    cfg.train.init_from = str(first)
    module = DiffusionModule(cfg)
    prior = continue_from(module, cfg, load_weights=True)
    weights, meta = load_exported(first)
    for key, value in module.net.state_dict().items():
        torch.testing.assert_close(value, weights[key])
    assert prior["steps"] == 2 and prior["sha256"] == meta["sha256"]
    second = train(cfg, accelerator="cpu", progress=False)
    assert second is not None
    totals = json.loads(second.with_suffix(".json").read_text())["training"]["totals"]
    assert totals["steps"] == 4 and totals["continued_from"] == meta["sha256"] and totals["cpu_seconds"] > 0
    other = config_from_dict({**cfg.to_dict(), "model": {**TINY_MODEL, "channels": [4, 8]}})
    other.train.init_from = str(first)
    with pytest.raises(InputError, match="another network size"):
        continue_from(DiffusionModule(other), other, load_weights=True)
    # the checkpoint carries the totals: an export from last.ckpt counts them after the source is gone
    from mridiff.training.run import export_checkpoint

    for suffix in (".safetensors", ".json", ".sha256"):
        first.with_suffix(suffix).unlink()
    again = export_checkpoint(tmp_path / "b" / "checkpoints" / "last.ckpt", tmp_path / "again.safetensors")
    card = json.loads(again.with_suffix(".json").read_text())["training"]
    assert card["totals"]["steps"] == 4 and card["totals"]["continued_from"] == meta["sha256"]
    assert card["totals"]["cpu_seconds"] > float(meta["training"]["cpu_seconds"])  # the first run's, plus this one

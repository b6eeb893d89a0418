"""``mridiff train``: --data moves every data root, errors come before Lightning, no model is lost (issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mridiff.cli import main
from mridiff.commands.train import apply_data_dir
from mridiff.config import config_from_dict
from mridiff.errors import InputError
from tests.helpers import tiny_config

LIGHTNING_BANNER = ("GPU available", "TPU available", "HPU available", "Trainer", "LOCAL_RANK")


def _config_file(path: Path, cfg_dict: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    return path


def _tiny(data_root: Path, out: Path, **data: Any) -> dict[str, Any]:
    cfg = tiny_config(data_root, out, max_steps=1).to_dict()
    cfg["data"].update(data)
    return cfg


def _train(*argv: str) -> list[str]:
    return ["train", *argv, "--accelerator", "cpu", "--devices", "1", "--no-progress"]


def _dataset_folder(where: Path, tiny_dataset: dict[str, Path]) -> Path:
    for name, src in (("multicoil_train", "multicoil"), ("singlecoil_train", "singlecoil"),
                      ("singlecoil_val", "singlecoil")):
        shutil.copytree(tiny_dataset[src], where / name)
    return where


def test_data_moves_every_root_of_the_config(tmp_path: Path, tiny_dataset: dict[str, Path]) -> None:
    site = _dataset_folder(tmp_path / "site", tiny_dataset)
    cfg = config_from_dict(_tiny(Path("work_data/default/multicoil_train"), tmp_path / "run",
                                 extra_roots=["work_data/default/singlecoil_train"],
                                 val_root="work_data/default/singlecoil_val"))
    note = apply_data_dir(cfg, str(site), "cfg.yaml")
    assert cfg.data.root == str(site / "multicoil_train")
    assert cfg.data.extra_roots == [str(site / "singlecoil_train")]
    assert cfg.data.val_root == str(site / "singlecoil_val")
    assert "data.extra_roots[0]=" in note and "data.val_root=" in note
    # A plain folder of scans: the only training folder; the config's other folders no longer apply.
    cfg = config_from_dict(_tiny(Path("work_data/default/multicoil_train"), tmp_path / "run",
                                 extra_roots=["work_data/default/singlecoil_train"],
                                 val_root="work_data/default/singlecoil_val"))
    apply_data_dir(cfg, str(tiny_dataset["singlecoil"]), "cfg.yaml")
    assert (cfg.data.root, cfg.data.extra_roots, cfg.data.val_root) == (str(tiny_dataset["singlecoil"]), [], None)
    cfg = config_from_dict(_tiny(Path("work_data/default/multicoil_train"), tmp_path / "run"))
    with pytest.raises(InputError, match="neither .h5 scans nor the config's data folders") as caught:
        apply_data_dir(cfg, str(tmp_path), "cfg.yaml")
    assert "multicoil_train" in caught.value.message()


def test_train_with_data_uses_the_new_folders(tmp_path: Path, tiny_dataset: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    site = _dataset_folder(tmp_path / "site", tiny_dataset)
    cfg = _config_file(tmp_path / "cfg.yaml", _tiny(tmp_path / "elsewhere" / "multicoil_train", tmp_path / "run",
                                                    extra_roots=[str(tmp_path / "elsewhere" / "singlecoil_train")],
                                                    val_root=str(tmp_path / "elsewhere" / "singlecoil_val")))
    assert main(_train("-c", str(cfg), "--data", str(site))) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"mridiff: note: --data: data.root={site / 'multicoil_train'}" in err
    data = json.loads((tmp_path / "run" / "model.json").read_text())["training"]["config"]["data"]
    assert data["root"] == str(site / "multicoil_train") and data["val_root"] == str(site / "singlecoil_val")
    assert data["extra_roots"] == [str(site / "singlecoil_train")]


def _one_line_before_lightning(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mridiff: error: "), err
    assert not any(word in out + err for word in LIGHTNING_BANNER), out + err
    return lines[0]


def test_image_bank_config_refuses_data_with_a_hint(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cfg = _config_file(tmp_path / "bank.yaml", _tiny(tmp_path, tmp_path / "run", images=str(tmp_path / "b.h5"),
                                                     val_root=str(tmp_path)))
    assert main(_train("-c", str(cfg), "--data", str(tmp_path))) == 2
    line = _one_line_before_lightning(capfd)
    assert "image bank" in line and "--set data.images=FILE" in line


@pytest.mark.parametrize("problem", ["existing_run", "wrong_task", "missing_data", "missing_val", "existing_model"])
def test_early_errors_come_before_lightning(problem: str, tmp_path: Path, tiny_dataset: dict[str, Path],
                                            tiny_recon_model: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    cfg_dict = _tiny(tiny_dataset["singlecoil"], out)
    extra: list[str] = []
    if problem == "existing_run":
        (out / "checkpoints").mkdir(parents=True)
        torch.save({"mridiff_config": json.dumps(cfg_dict), "global_step": 1}, out / "checkpoints" / "last.ckpt")
    elif problem == "wrong_task":
        extra = ["--task", "sr"]
    elif problem == "missing_data":
        cfg_dict["data"]["root"] = str(tmp_path / "nowhere")
    elif problem == "missing_val":
        cfg_dict["data"]["val_root"] = str(tmp_path / "no_val")
    else:
        out.mkdir()
        for suffix in (".safetensors", ".json", ".sha256"):
            shutil.copy(tiny_recon_model.with_suffix(suffix), out / f"model{suffix}")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    cfg = _config_file(tmp_path / "cfg.yaml", cfg_dict)
    assert main(_train("-c", str(cfg), *extra)) == 2
    line = _one_line_before_lightning(capfd)
    needle = {"existing_run": "a previous run exists in out_dir", "wrong_task": "config is for task 'recon'",
              "missing_data": "training data directory not found", "missing_val": "no_val",
              "existing_model": "model.safetensors: a model exported by an earlier run exists"}[problem]
    assert needle in line
    if problem == "existing_model":
        assert "--overwrite" in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before if out.exists() else True


def test_overwrite_replaces_an_exported_model_only_when_asked(tmp_path: Path, tiny_dataset: dict[str, Path],
                                                              tiny_recon_model: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for suffix in (".safetensors", ".json", ".sha256"):
        shutil.copy(tiny_recon_model.with_suffix(suffix), out / f"model{suffix}")
    old = (out / "model.safetensors").read_bytes()
    cfg = _config_file(tmp_path / "cfg.yaml", _tiny(tiny_dataset["singlecoil"], out))
    assert main(_train("-c", str(cfg))) == 2
    assert (out / "model.safetensors").read_bytes() == old
    capsys.readouterr()
    assert main(_train("-c", str(cfg), "--overwrite")) == 0, capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() != old
    assert json.loads((out / "model.json").read_text())["training"]["global_step"] == 1


@pytest.mark.parametrize("change", ["task", "network", "schedule"])
def test_resume_with_another_task_or_network_is_refused(change: str, tmp_path: Path, tiny_dataset: dict[str, Path],
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    stored = _tiny(tiny_dataset["singlecoil"], out)
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"mridiff_config": json.dumps(stored), "global_step": 1, "state_dict": {"net.w": torch.zeros(2)}},
               out / "checkpoints" / "last.ckpt")
    setting = {"task": "task=sr", "network": "model.channels=[16, 32]", "schedule": "diffusion.timesteps=500"}[change]
    cfg = _config_file(tmp_path / "cfg.yaml", stored)
    assert main(_train("-c", str(cfg), "--resume", "--set", setting)) == 2
    line = _one_line_before_lightning(capfd)
    assert "cannot resume: the config differs from the checkpoint's run" in line
    assert {"task": "task 'recon' -> 'sr'", "network": "model.channels [8, 16] -> [16, 32]",
            "schedule": "diffusion.timesteps 1000 -> 500"}[change] in line
    assert not (out / "model.safetensors").exists()


def test_resume_from_a_foreign_checkpoint_is_refused(tmp_path: Path, tiny_dataset: dict[str, Path],
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, out / "checkpoints" / "last.ckpt")
    cfg = _config_file(tmp_path / "cfg.yaml", _tiny(tiny_dataset["singlecoil"], out))
    assert main(_train("-c", str(cfg), "--resume")) == 2
    assert "not an mridiff training checkpoint" in _one_line_before_lightning(capfd)

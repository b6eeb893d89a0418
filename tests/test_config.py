from pathlib import Path

import pytest

from mridiff.config import load_config
from mridiff.errors import InputError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_committed_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.task in ("recon", "sr", "augment")


def test_unknown_key_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("task: recon\ntrain:\n  batch_sise: 4\n")
    with pytest.raises(InputError, match="train.batch_sise"):
        load_config(p)


def test_wrong_type_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("task: recon\ntrain:\n  lr: fast\n")
    with pytest.raises(InputError, match="train.lr"):
        load_config(p)


def test_bad_model_section_and_task(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("task: recon\nmodel:\n  chanels: [8]\n")
    with pytest.raises(InputError, match="model"):
        load_config(p)
    p.write_text("task: denoise\n")
    with pytest.raises(InputError, match="task"):
        load_config(p)


def test_not_yaml(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("task: [unclosed\n")
    with pytest.raises(InputError, match="YAML"):
        load_config(p)

from pathlib import Path

import pytest

from mridiff.config import load_config
from mridiff.errors import InputError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_committed_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.task in ("recon", "sr", "augment")


@pytest.mark.parametrize(("text", "named"), [
    ("task: recon\ntrain:\n  batch_sise: 4\n", "train.batch_sise"),  # unknown key
    ("task: recon\ntrain:\n  lr: fast\n", "train.lr"),  # wrong type
    ("task: recon\nmodel:\n  chanels: [8]\n", "model"),  # bad model section
    ("task: denoise\n", "task"),  # unknown task
    ("task: recon\ntrain:\n  min_snr_gamma: 0\n", "train.min_snr_gamma"),  # must be positive
])
def test_bad_config_rejected_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=named):
        load_config(p)


def test_not_yaml(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("task: [unclosed\n")
    with pytest.raises(InputError, match="YAML"):
        load_config(p)

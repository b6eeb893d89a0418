"""Issue 6.4: checkpoints and models from elsewhere: a pickle payload never runs; checksums are enforced."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import bad_inputs as bi
import pytest
import torch

from mridiff.errors import InputError
from mridiff.inference.model import load_model
from mridiff.training.checkpoint import SafeCheckpointIO, load_exported, safe_torch_load


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """A malicious checkpoint and the marker file its payload would create."""
    marker = tmp_path / "PWNED"
    return bi.write_malicious_checkpoint(tmp_path / "evil.ckpt", marker), marker


def test_payload_is_real_when_loaded_unsafely(evil: tuple[Path, Path]) -> None:
    """Control: the file does run code under a plain unpickler, so the refusals below mean something."""
    path, marker = evil
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with open(path, "rb") as fh, pytest.raises(pickle.UnpicklingError):  # torch's zip container, not raw pickle
        pickle.load(fh)
    assert not marker.exists()


def test_safe_torch_load_refuses_payload_in_one_line(evil: tuple[Path, Path]) -> None:
    path, marker = evil
    with pytest.raises(InputError) as err:
        safe_torch_load(path)
    msg = err.value.message()
    assert msg.startswith(f"{path}: refused to load checkpoint")
    assert "io.open" in msg and "\n" not in msg and "\x1b" not in msg
    assert "weights_only" not in msg  # never advise the unsafe way round
    assert not marker.exists()


def test_lightning_checkpoint_io_refuses_even_when_asked_for_unsafe_load(evil: tuple[Path, Path]) -> None:
    path, marker = evil
    with pytest.raises(InputError, match="refused to load checkpoint"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


def test_plain_checkpoint_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.ckpt"
    SafeCheckpointIO().save_checkpoint({"global_step": 4, "state_dict": {"w": torch.arange(3.0)}}, path)
    state = safe_torch_load(path)
    assert state["global_step"] == 4 and torch.equal(state["state_dict"]["w"], torch.arange(3.0))


@pytest.mark.parametrize("with_json", [False, True])
def test_model_loader_never_unpickles(tmp_path: Path, evil: tuple[Path, Path], with_json: bool) -> None:
    """A pickle passed as ``--ckpt``: refused without a model card, and with a card that vouches for it."""
    path, marker = evil
    ckpt = path.rename(tmp_path / "evil.safetensors")
    if with_json:
        meta = {"format": "mridiff-model", "version": 1, "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
                **bi.tiny_meta(bi.tiny_unet_config())}
        ckpt.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(InputError) as err:
        load_model(ckpt, "recon", "cpu")
    assert err.value.path is not None and Path(err.value.path).name in {"evil.safetensors", "evil.json"}
    assert not marker.exists()


def test_export_writes_a_checkable_sha256_sidecar(assets: bi.Assets) -> None:
    digest = hashlib.sha256(assets.model.read_bytes()).hexdigest()
    assert assets.model.with_suffix(".sha256").read_text() == f"{digest}  {assets.model.name}\n"  # sha256sum -c
    assert json.loads(assets.model.with_suffix(".json").read_text())["sha256"] == digest
    weights, meta = load_exported(assets.model, expect_sha256=digest.upper(), expect_task="recon")
    assert meta["sha256"] == digest and weights


def test_expect_sha256_accepts_the_right_digest_and_refuses_another(
        tmp_path: Path, assets: bi.Assets, run_recon: Callable[..., bi.Outcome]) -> None:
    digest = assets.model.with_suffix(".sha256").read_text().split()[0]
    ok = run_recon([assets.scan], tmp_path / "ok", "--expect-sha256", digest)
    assert ok.exit_code == 0, ok.stderr

    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    bad = run_recon([assets.scan], tmp_path / "bad", "--expect-sha256", wrong)
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        f"mridiff: error: {assets.model}: SHA-256 mismatch: file is {digest[:16]}…, expected {wrong[:16]}… "
        "(the file is corrupt or not the model you meant)"]
    assert not (tmp_path / "bad").exists()

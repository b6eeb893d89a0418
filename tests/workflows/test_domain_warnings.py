"""Out-of-domain warnings of ``mridiff reconstruct`` follow the model card (the bundled real-data prior's included)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mridiff.io.bundled import default_model_path
from mridiff.workflows.recon import ReconOptions, read_input
from tests.conftest import write_fastmri_h5

# A card as `mridiff train` writes it for a model trained on 128x128 templates without augmentation.
TEMPLATE_128 = {"domain": {"matrix": [128, 128], "contrast": "T1"}, "training": {"image_size": [128, 128]}}
# A card from before the domain entry existed: only the training size.
LEGACY_128 = {"training": {"image_size": [128, 128]}}


def bundled_recon_card() -> dict[str, Any]:
    card: dict[str, Any] = json.loads(default_model_path("recon").with_suffix(".json").read_text())
    return card


def scan(tmp_path: Path, name: str, encoded: tuple[int, int], recon: tuple[int, int], acquisition: str) -> Path:
    """A fully sampled single-coil file with a fastMRI header (encoded and recon matrix) and no target."""
    kspace = np.zeros((1, *encoded), np.complex64)
    kspace[0, encoded[0] // 2, encoded[1] // 2] = 1.0
    target = np.zeros((1, *recon), np.float32)
    return write_fastmri_h5(tmp_path / name, kspace, target=target, attrs={"acquisition": acquisition})


def domain_warnings(path: Path, meta: dict[str, Any]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_input(path, ReconOptions(), meta)
    return [str(w.message) for w in caught if "domain" in str(w.message) or "T1-weighted" in str(w.message)]


def test_bundled_recon_card_is_the_contrast_agnostic_real_data_prior() -> None:
    card = bundled_recon_card()
    assert card["training"]["image_size"] == [256, 256]
    assert card["training"]["config"]["data"]["intensity_remap"] is True
    assert card["domain"]["contrast"] == "any"
    lo, hi = card["domain"]["matrix"]
    assert lo <= 256 <= hi and lo <= 320 <= hi and hi < 640


@pytest.mark.parametrize(("encoded", "recon", "acquisition"), [
    ((256, 256), (256, 256), "AXT1POST"),
    ((256, 256), (256, 256), "AXT2"),
    ((320, 320), (320, 320), "AXFLAIR"),
    ((640, 320), (320, 320), "AXT2"),      # fastMRI brain: readout oversampled 2x, 320x320 image
    ((640, 320), (320, 320), "CORPD_FBK"),  # another contrast name (PD)
])
def test_bundled_recon_model_accepts_256_and_320_in_any_contrast(tmp_path: Path, encoded: tuple[int, int],
                                                                 recon: tuple[int, int], acquisition: str) -> None:
    path = scan(tmp_path, "in.h5", encoded, recon, acquisition)
    assert domain_warnings(path, bundled_recon_card()) == []


@pytest.mark.parametrize(("encoded", "recon"), [((64, 64), (64, 64)), ((768, 768), (768, 768)),
                                                 ((1280, 640), (640, 640))])
def test_bundled_recon_model_still_warns_far_outside_its_matrix_range(tmp_path: Path, encoded: tuple[int, int],
                                                                      recon: tuple[int, int]) -> None:
    path = scan(tmp_path, "in.h5", encoded, recon, "AXT2")
    found = domain_warnings(path, bundled_recon_card())
    assert len(found) == 1 and "outside the model's training range" in found[0]
    assert f"{recon}" in found[0] and "T1-weighted" not in found[0]


@pytest.mark.parametrize("meta", [TEMPLATE_128, LEGACY_128], ids=["template-card", "legacy-card"])
def test_a_template_model_at_128_warns_as_before(tmp_path: Path, meta: dict[str, Any]) -> None:
    assert domain_warnings(scan(tmp_path, "a.h5", (128, 128), (128, 128), "AXT1"), meta) == []
    big = domain_warnings(scan(tmp_path, "b.h5", (256, 256), (256, 256), "AXT1"), meta)
    assert len(big) == 1 and ("outside the model's training range" in big[0] or "training size" in big[0])
    t2 = domain_warnings(scan(tmp_path, "c.h5", (128, 128), (128, 128), "AXT2"), meta)
    assert len(t2) == 1 and "T1-weighted" in t2[0] and "AXT2" not in t2[0]

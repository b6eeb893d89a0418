"""Figures: heat map ends, transparent overlay where there is nothing to show, panel with a colour bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mridiff.io.figures import colour_panel_png, heat_rgb, overlay_rgb, reliability_png


def test_heat_map_runs_black_to_white() -> None:
    rgb = heat_rgb(np.array([[0.0, 0.5, 1.0, 2.0]]), 1.0)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 2].tolist() == [255, 255, 255]
    assert rgb[0, 3].tolist() == [255, 255, 255]  # clipped above vmax
    assert rgb[0, 1, 0] > rgb[0, 1, 2]  # red before blue on the way up


def test_overlay_leaves_zero_pixels_grey() -> None:
    img = np.full((4, 4), 0.5)
    values = np.zeros((4, 4))
    values[0, 0] = 0.5  # mid-heat: orange
    out = overlay_rgb(img, values, 1.0, 1.0)
    assert (out[1:, 1:] == out[1, 1, 0]).all()  # untouched pixels stay grey (R = G = B)
    assert out[0, 0, 0] > out[0, 0, 2]


def test_colour_panel_and_reliability_diagram(tmp_path: Path) -> None:
    img = np.random.default_rng(0).random((32, 32))
    colour_panel_png([img, overlay_rgb(img, img, 1.0, 1.0)], ["a", "b"], tmp_path / "p.png", ("x", 1.0))
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (2 * 32 + 70, 32 + 14)
    reliability_png({"mode": [(0.5, 0.45), (0.9, 0.88)]}, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0

"""Figures: heat map ends, transparent overlay where there is nothing to show, panel with a colour bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mridiff.io.figures import (
    COLOURBAR_WIDTH,
    colour_panel_png,
    contact_sheet_png,
    ema_smooth,
    heat_rgb,
    loss_curve_png,
    loss_figure,
    metrics_caption,
    overlay_rgb,
    panel_png,
    reliability_png,
)


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


# --- issue 14, item 14: colour bars, PSNR/SSIM captions, no empty columns, loss plot, contact sheet -------------


def test_panel_leaves_out_columns_without_images(tmp_path: Path) -> None:
    img = np.random.default_rng(0).random((32, 32))
    rows = [[img, img, None, None], [img, img, None, None]]  # no target: no target or error column
    panel_png(rows, ["zero-filled", "mridiff", "target", "|error|"], tmp_path / "p.png", overwrite=True)
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (2 * 32, 2 * (32 + 14))


def test_panel_colour_bars_and_metric_captions(tmp_path: Path) -> None:
    img = np.full((48, 48), 0.5)
    panel_png([[img, img]], ["a", "b"], tmp_path / "plain.png", vmaxes=[1.0, 1.0])
    panel_png([[img, img]], ["a", "b"], tmp_path / "bars.png", vmaxes=[1.0, 0.25], colourbars=True,
              annotations=[[metrics_caption(31.24, 0.9123), None]])
    with Image.open(tmp_path / "plain.png") as im:
        plain = np.asarray(im)
    with Image.open(tmp_path / "bars.png") as im:
        bars = np.asarray(im)
    assert bars.shape == (48 + 14, 2 * (48 + COLOURBAR_WIDTH))
    ramp = bars[14:, 48 + 5]  # the first column's bar: white at the top, black at the bottom
    assert ramp[0] == 255 and ramp[-1] == 0 and np.all(np.diff(ramp.astype(int)) <= 0)
    # the caption is drawn into the lower-left corner of the first image only
    assert not np.array_equal(bars[14 + 24 :, :40], plain[14 + 24 :, :40])
    second = bars[14:, 48 + COLOURBAR_WIDTH :][:, :48]
    assert np.array_equal(second, np.full((48, 48), 255))  # 0.5 with white at 0.25: saturated, no caption
    assert metrics_caption(31.24, 0.9123) == "PSNR 31.2 dB\nSSIM 0.912"
    assert metrics_caption(float("nan"), None) == ""


def test_contact_sheet_grid_with_captions(tmp_path: Path) -> None:
    images = [np.full((20, 20), float(i + 1)) for i in range(5)]
    captions = [f"sample_{i:06d}\nseed {100 + i}" for i in range(5)]
    contact_sheet_png(images, captions, tmp_path / "sheet.png", title="5 samples")
    with Image.open(tmp_path / "sheet.png") as im:
        sheet = np.asarray(im)
    caption_h = 2 * 12 + 2
    assert sheet.shape == (14 + 2 * (20 + caption_h), 3 * 20)  # 5 images -> 3 columns x 2 rows
    tile = sheet[14 + caption_h : 14 + caption_h + 20, :20]
    assert tile.max() < 255  # one shared white level: the first (darkest) sample is not stretched to white
    assert sheet[14 : 14 + caption_h, :20].max() > 200  # caption text
    with pytest.raises(ValueError):
        contact_sheet_png(images, captions[:2], tmp_path / "bad.png")


def test_ema_smoothing_is_debiased_and_smooths() -> None:
    np.testing.assert_allclose(ema_smooth(np.full(10, 3.0), 0.9), 3.0)
    noisy = 1.0 + np.random.default_rng(0).normal(0, 0.1, 2000)
    smooth = ema_smooth(noisy, 0.98)
    assert smooth[0] == noisy[0] and smooth[200:].std() < 0.3 * noisy.std()


def test_loss_figure_has_axes_labels_and_a_smoothed_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    history = [(s, float(np.exp(-s / 300) + 0.05 * rng.random())) for s in range(1, 1001)]
    fig = loss_figure(history, val_history=[(500, 20.0), (1000, 24.0)])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimiser step" and "loss" in ax.get_ylabel() and ax.get_yscale() == "log"
    raw, smooth = ax.get_lines()[:2]
    assert np.std(np.diff(np.log(smooth.get_ydata()))) < np.std(np.diff(np.log(raw.get_ydata())))
    assert fig.axes[1].get_ylabel() == "validation PSNR (dB)"
    loss_curve_png(history, tmp_path / "loss.png")
    with Image.open(tmp_path / "loss.png") as im:
        assert im.size == (720, 432)

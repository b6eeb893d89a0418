"""PNG figures a person can look at: labelled image panels and loss curves (Pillow only, no matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mridiff.io.atomic import atomic_path

LABEL_HEIGHT = 14


def to_uint8(image: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale a magnitude image to 0..255 with ``vmax`` (default: its 99.5th percentile) as white."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    top = float(np.percentile(img, 99.5)) if vmax is None else vmax
    top = top if top > 0 else 1.0
    return (np.clip(img / top, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def panel_png(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    vmaxes: Sequence[float | None] | None = None,
    overwrite: bool = False,
    row_labels: Sequence[str] | None = None,
) -> None:
    """Write a grid of greyscale images with a label above each column.

    Args:
        rows: rows of 2D arrays, all the same shape.
        labels: one label per column.
        path: output PNG.
        vmaxes: per-column white level (``None``: the image's own 99.5th percentile).
        overwrite: replace an existing file.
        row_labels: optional text drawn at the start of each row.

    """
    height, width = rows[0][0].shape
    ncol = len(labels)
    canvas = Image.new("L", (ncol * width, len(rows) * (height + LABEL_HEIGHT)), color=0)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        top = r * (height + LABEL_HEIGHT)
        for c, img in enumerate(row):
            vmax = vmaxes[c] if vmaxes is not None else None
            canvas.paste(Image.fromarray(to_uint8(img, vmax)), (c * width, top + LABEL_HEIGHT))
            text = labels[c] if row_labels is None or c else f"{row_labels[r]} {labels[c]}"
            draw.text((c * width + 2, top + 1), text, fill=255)
    with atomic_path(path, overwrite) as tmp:
        canvas.save(tmp, format="PNG")


def loss_curve_png(history: Sequence[tuple[int, float]], path: str | os.PathLike[str], size: int = 480) -> None:
    """Plot a loss curve (log scale, smoothed) to PNG."""
    steps = np.array([s for s, _ in history], dtype=np.float64)
    loss = np.log10(np.maximum(np.array([v for _, v in history], dtype=np.float64), 1e-12))
    kernel = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(kernel) / kernel, mode="valid")
    xs = steps[kernel - 1 :]
    img = Image.new("RGB", (size, size // 2), "white")
    draw = ImageDraw.Draw(img)
    pad = 30
    w, h = size - 2 * pad, size // 2 - 2 * pad
    lo, hi = float(smooth.min()), float(smooth.max())
    span = hi - lo if hi > lo else 1.0
    x_span = xs[-1] - xs[0] if len(xs) > 1 and xs[-1] > xs[0] else 1.0
    pts = [(pad + (x - xs[0]) / x_span * w, pad + (hi - v) / span * h) for x, v in zip(xs, smooth, strict=True)]
    if len(pts) > 1:
        draw.line(pts, fill="navy", width=2)
    draw.rectangle([pad, pad, pad + w, pad + h], outline="black")
    draw.text((pad, 5), f"log10 training loss (smoothed); steps {int(steps[0])}-{int(steps[-1])}", fill="black")
    draw.text((pad, pad + h + 5), f"min {10**lo:.4g}  max {10**hi:.4g}", fill="black")
    with atomic_path(path, overwrite=True) as tmp:
        img.save(tmp, format="PNG")


def reliability_png(curves: dict[str, Sequence[tuple[float, float]]], path: str | os.PathLike[str],
                    size: int = 420, overwrite: bool = True) -> None:
    """A reliability diagram: observed against nominal coverage, one line per mode, the diagonal for reference.

    Args:
        curves: ``{label: [(nominal, observed), ...]}`` with coverages in [0, 1].
        path: output PNG.
        size: side in pixels.
        overwrite: replace an existing file.
    """
    colours = ["navy", "darkred", "darkgreen", "darkorange", "purple", "teal", "brown", "black"]
    img = Image.new("RGB", (size + 160, size), "white")
    draw = ImageDraw.Draw(img)
    pad = 36
    side = size - 2 * pad
    lo = 0.4  # the axes span 40-100 % coverage: the levels of interest are 50-99 %

    def xy(nominal: float, observed: float) -> tuple[float, float]:
        return (pad + (nominal - lo) / (1 - lo) * side, pad + (1 - (observed - lo) / (1 - lo)) * side)

    draw.rectangle([pad, pad, pad + side, pad + side], outline="black")
    draw.line([xy(lo, lo), xy(1.0, 1.0)], fill="grey", width=1)
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        x, _ = xy(tick, lo)
        _, y = xy(lo, tick)
        draw.text((x - 8, pad + side + 4), f"{tick:.1f}", fill="black")
        draw.text((4, y - 5), f"{tick:.1f}", fill="black")
    draw.text((pad, 8), "observed vs nominal coverage (grey: ideal)", fill="black")
    for i, (label, pts) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        line = [xy(n, max(o, lo)) for n, o in pts]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((size + 4, pad + 14 * i), label[:26], fill=colour)
    with atomic_path(path, overwrite) as tmp:
        img.save(tmp, format="PNG")


def heat_rgb(values: np.ndarray, vmax: float) -> np.ndarray:
    """A perceptually ordered black-red-yellow-white heat map of ``values / vmax`` as uint8 RGB (H, W, 3)."""
    t = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)) / (vmax if vmax > 0 else 1.0), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def overlay_rgb(image: np.ndarray, values: np.ndarray, vmax_image: float, vmax_values: float,
                alpha: float = 0.6) -> np.ndarray:
    """A grey image with ``values`` blended on top as a heat map (transparent where the values are 0)."""
    grey = to_uint8(image, vmax_image).astype(np.float64)[..., None].repeat(3, axis=-1)
    heat = heat_rgb(values, vmax_values).astype(np.float64)
    weight = alpha * np.clip(np.asarray(values, dtype=np.float64) / (vmax_values or 1.0), 0, 1)[..., None]
    return ((1 - weight) * grey + weight * heat).round().astype(np.uint8)


def colour_panel_png(columns: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike[str],
                     colourbar: tuple[str, float] | None = None, overwrite: bool = False) -> None:
    """One row of images (grey 2D or RGB (H, W, 3) uint8) with labels, and an optional heat colour bar.

    Args:
        columns: the images, all the same height and width.
        labels: one label per image.
        path: output PNG.
        colourbar: ``(label, vmax)`` of the heat map used in the RGB columns: a bar from 0 to ``vmax``.
        overwrite: replace an existing file.
    """
    height, width = columns[0].shape[:2]
    bar_w = 70 if colourbar else 0
    canvas = Image.new("RGB", (len(columns) * width + bar_w, height + LABEL_HEIGHT), color=(0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for c, img in enumerate(columns):
        arr = img if img.ndim == 3 else to_uint8(img)
        canvas.paste(Image.fromarray(arr).convert("RGB"), (c * width, LABEL_HEIGHT))
        draw.text((c * width + 2, 1), labels[c], fill=(255, 255, 255))
    if colourbar:
        name, vmax = colourbar
        ramp = heat_rgb(np.linspace(1, 0, height - 20)[:, None].repeat(12, axis=1), 1.0)
        x0 = len(columns) * width + 6
        canvas.paste(Image.fromarray(ramp), (x0, LABEL_HEIGHT + 10))
        draw.text((x0, 1), name[:11], fill=(255, 255, 255))
        draw.text((x0 + 16, LABEL_HEIGHT + 8), f"{vmax:.3g}", fill=(255, 255, 255))
        draw.text((x0 + 16, LABEL_HEIGHT + height - 22), "0", fill=(255, 255, 255))
    with atomic_path(path, overwrite) as tmp:
        canvas.save(tmp, format="PNG")

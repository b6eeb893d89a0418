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

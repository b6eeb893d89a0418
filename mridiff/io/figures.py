"""PNG figures a person can look at: image panels, contact sheets, loss curves, reliability diagrams.

Panels carry labels, optional colour bars and PSNR/SSIM captions; contact sheets show generated samples with
their names and seeds.

Image panels use Pillow only (exact pixels, no resampling of the images); the loss curve uses matplotlib's
object-oriented API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from mridiff.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_HEIGHT = 14
COLOURBAR_WIDTH = 44  # per image when colour bars are on: an 8-pixel ramp and its end values
CAPTION_LINE = 12


def white_level(image: np.ndarray, vmax: float | None = None) -> float:
    """The value shown as white: ``vmax``, else the image's 99.5th percentile (1.0 for an all-zero image)."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    top = float(np.percentile(img, 99.5)) if vmax is None else float(vmax)
    return top if top > 0 else 1.0


def to_uint8(image: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale a magnitude image to 0..255 with ``vmax`` (default: its 99.5th percentile) as white."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    return (np.clip(img / white_level(img, vmax), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def metrics_caption(psnr: float | None = None, ssim: float | None = None) -> str:
    """Caption for a panel cell: ``PSNR 31.2 dB`` and ``SSIM 0.912`` on two lines (missing or non-finite left out)."""
    parts = []
    if psnr is not None and math.isfinite(psnr):
        parts.append(f"PSNR {psnr:.1f} dB")
    if ssim is not None and math.isfinite(ssim):
        parts.append(f"SSIM {ssim:.3f}")
    return "\n".join(parts)


def _draw_caption(draw: ImageDraw.ImageDraw, text: str, left: int, bottom: int) -> None:
    """White text on a black box, its lower-left corner at (left, bottom); lines separated by newlines."""
    lines = [ln for ln in text.split("\n") if ln]
    for k, line in enumerate(reversed(lines)):
        y = bottom - (k + 1) * CAPTION_LINE
        box = draw.textbbox((left + 2, y), line)
        draw.rectangle([left, y, box[2] + 2, y + CAPTION_LINE - 1], fill=0)
        draw.text((left + 2, y), line, fill=255)


def _draw_grey_bar(canvas: Image.Image, draw: ImageDraw.ImageDraw, left: int, top: int, height: int,
                   vmax: float) -> None:
    """A vertical black-to-white ramp with its end values, in a ``COLOURBAR_WIDTH`` gutter at (left, top)."""
    ramp = np.linspace(255, 0, height).round().astype(np.uint8)[:, None].repeat(8, axis=1)
    canvas.paste(Image.fromarray(ramp), (left + 3, top))
    draw.text((left + 13, top), f"{vmax:.3g}", fill=255)
    draw.text((left + 13, top + height - CAPTION_LINE), "0", fill=255)


def panel_png(
    rows: Sequence[Sequence[np.ndarray | None]],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    vmaxes: Sequence[float | None] | None = None,
    overwrite: bool = False,
    row_labels: Sequence[str] | None = None,
    *,
    colourbars: bool = False,
    annotations: Sequence[Sequence[str | None]] | None = None,
) -> None:
    """Write a grid of greyscale images with a label above each column.

    A column whose cells are all ``None`` (e.g. ``target`` and ``|error|`` when a scan has no ground truth, or
    ``std`` with one sample) is left out with its label, so no empty labelled column is drawn; a single ``None``
    in a kept column is drawn black.

    Args:
        rows: rows of 2D arrays ``(H, W)`` (real; magnitudes), all the same shape, or ``None`` for "no image".
        labels: one label per column.
        path: output PNG.
        vmaxes: per-column white level (``None``: the image's own 99.5th percentile).
        overwrite: replace an existing file.
        row_labels: optional text drawn at the start of each row.
        colourbars: draw a black-to-white bar right of every image, labelled with the values shown as black (0)
            and white (the column's ``vmaxes`` entry or the image's own white level), so columns with different
            scales (e.g. ``|error| x4``) can be read.
        annotations: optional text per cell, same layout as ``rows`` (``None`` or ``""`` for none), drawn on a
            black box at the image's lower-left corner; use :func:`metrics_caption` for PSNR/SSIM against the target.

    Raises:
        ValueError: if every column is empty.
    """
    keep = [c for c in range(len(labels)) if any(c < len(row) and row[c] is not None for row in rows)]
    if not keep:
        raise ValueError("panel_png: no image to draw")
    first = next(row[c] for row in rows for c in keep if c < len(row) and row[c] is not None)
    assert first is not None
    height, width = first.shape
    cell = width + (COLOURBAR_WIDTH if colourbars else 0)
    canvas = Image.new("L", (len(keep) * cell, len(rows) * (height + LABEL_HEIGHT)), color=0)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        top = r * (height + LABEL_HEIGHT)
        for k, c in enumerate(keep):
            left = k * cell
            img = row[c] if c < len(row) else None
            text = labels[c] if row_labels is None or k else f"{row_labels[r]} {labels[c]}"
            draw.text((left + 2, top + 1), text, fill=255)
            if img is None:
                continue
            vmax = white_level(img, vmaxes[c] if vmaxes is not None else None)
            tile = Image.fromarray(to_uint8(img, vmax))
            note = annotations[r][c] if annotations is not None and c < len(annotations[r]) else None
            if note:  # drawn on the tile, so that a long caption is cut at the image's edge
                _draw_caption(ImageDraw.Draw(tile), note, 0, height)
            canvas.paste(tile, (left, top + LABEL_HEIGHT))
            if colourbars:
                _draw_grey_bar(canvas, draw, left + width, top + LABEL_HEIGHT, height, vmax)
    with atomic_path(path, overwrite) as tmp:
        canvas.save(tmp, format="PNG")


def contact_sheet_png(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | os.PathLike[str],
    *,
    columns: int | None = None,
    vmax: float | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> None:
    """A contact sheet: images in a near-square grid (N images -> ceil(sqrt(N)) columns), each with a caption.

    All tiles share one white level, so brightness compares across samples. For many samples pass a subset
    (e.g. the first 64); the sheet is ``columns x rows`` full-size tiles.

    Args:
        images: 2D magnitude arrays ``(H, W)``; smaller ones are centred in a tile of the largest size.
        captions: one per image, up to two lines separated by a newline, e.g. the sample's name, then its seed.
        path: output PNG.
        columns: tiles per row (default ``ceil(sqrt(N))``).
        vmax: the white level (default: the 99.5th percentile over all images).
        title: optional line above the grid.
        overwrite: replace an existing file.

    Raises:
        ValueError: for no images, or a caption count that differs from the image count.
    """
    if not images or len(images) != len(captions):
        raise ValueError(f"contact_sheet_png: {len(images)} images and {len(captions)} captions")
    ncol = columns or math.ceil(math.sqrt(len(images)))
    nrow = math.ceil(len(images) / ncol)
    tile_h = max(img.shape[0] for img in images)
    tile_w = max(img.shape[1] for img in images)
    white = white_level(np.concatenate([np.ravel(img) for img in images]), vmax)
    head = LABEL_HEIGHT if title else 0
    caption_h = 2 * CAPTION_LINE + 2
    canvas = Image.new("L", (ncol * tile_w, head + nrow * (tile_h + caption_h)), color=0)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((2, 1), title, fill=255)
    for i, (img, caption) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(i, ncol)
        left, top = c * tile_w, head + r * (tile_h + caption_h)
        for k, line in enumerate(caption.split("\n")[:2]):
            draw.text((left + 2, top + 1 + k * CAPTION_LINE), line, fill=255)
        y0, x0 = (tile_h - img.shape[0]) // 2, (tile_w - img.shape[1]) // 2
        canvas.paste(Image.fromarray(to_uint8(img, white)), (left + x0, top + caption_h + y0))
    with atomic_path(path, overwrite) as tmp:
        canvas.save(tmp, format="PNG")


def ema_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing slider).

    ``s_t = weight * s_{t-1} + (1 - weight) * x_t`` from ``s_{-1} = 0``, divided by ``1 - weight^(t+1)``, so the
    first value is ``x_0`` and a constant series stays constant.

    Args:
        values: 1D series.
        weight: in [0, 1); 0 returns the series unchanged.

    Returns:
        float64 array of the same length.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    acc = 0.0
    for t, v in enumerate(x):
        acc = weight * acc + (1.0 - weight) * v
        out[t] = acc / (1.0 - weight ** (t + 1))
    return out


def default_smoothing(n_points: int) -> float:
    """EMA weight for a curve of ``n_points``: an effective window of about 2 % of the points (at least 1)."""
    span = max(1.0, n_points / 50)
    return 1.0 - 1.0 / span


def loss_figure(history: Sequence[tuple[int, float]], *, smoothing: float | None = None, title: str | None = None,
                val_history: Sequence[tuple[int, float]] | None = None, size: int = 720) -> Figure:
    """A matplotlib figure of the training loss: raw values faint, EMA-smoothed values bold, log y axis.

    The EMA runs on log10(loss), i.e. it is a geometric mean, which suits a log axis and losses spanning decades.

    Args:
        history: ``(step, loss)`` pairs in step order.
        smoothing: EMA weight in [0, 1) (default :func:`default_smoothing` of the number of points).
        title: figure title (default: "training loss").
        val_history: optional ``(step, validation PSNR in dB)`` pairs, drawn on a second y axis.
        size: width in pixels (height 0.6 x width, 100 dpi).

    Returns:
        The figure (Agg canvas attached; save it with ``fig.savefig``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = np.array([s for s, _ in history], dtype=np.float64)
    loss = np.maximum(np.array([v for _, v in history], dtype=np.float64), 1e-12)
    weight = default_smoothing(len(loss)) if smoothing is None else smoothing
    smooth = 10.0 ** ema_smooth(np.log10(loss), weight)
    fig = Figure(figsize=(size / 100, 0.6 * size / 100), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss")
    window = 1.0 / (1.0 - weight) if weight < 1 else float("inf")
    ax.plot(steps, smooth, color="tab:blue", linewidth=2.0, label=f"EMA (window ~{window:.0f} points)")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "training loss")
    handles, names = ax.get_legend_handles_labels()
    if val_history:
        twin = ax.twinx()
        twin.plot([s for s, _ in val_history], [v for _, v in val_history], "o-", color="tab:red",
                  label="validation PSNR")
        twin.set_ylabel("validation PSNR (dB)")
        more, more_names = twin.get_legend_handles_labels()
        handles, names = handles + more, names + more_names
    ax.legend(handles, names, loc="upper right")
    return fig


def loss_curve_png(history: Sequence[tuple[int, float]], path: str | os.PathLike[str], size: int = 720, *,
                   smoothing: float | None = None, title: str | None = None,
                   val_history: Sequence[tuple[int, float]] | None = None) -> None:
    """Plot a loss curve to PNG (replacing ``path``): see :func:`loss_figure` for the arguments."""
    fig = loss_figure(history, smoothing=smoothing, title=title, val_history=val_history, size=size)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")


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

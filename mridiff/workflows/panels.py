"""The PNG panels of the reconstruction and super-resolution workflows.

A panel shows a few slices (rows) and, per row, the classical answer, mridiff's mean, the target and the error
against it, and the std over samples. Columns that have nothing to show (no target, K = 1) are left out; every
image has a colour bar with its white level; with a target, the baseline and mridiff carry their PSNR/SSIM for
that slice (the volume's maximum as data range and the central-square crop of :mod:`mridiff.metrics`, as in
``metrics.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mridiff.io.figures import colour_panel_png, metrics_caption, overlay_rgb, panel_png
from mridiff.metrics import crop_like_fastmri, psnr, ssim

ERROR_GAIN = 4  # error and std columns are shown at 4x the image scale ("|error| x4")


def pick_rows(num_slices: int, count: int) -> list[int]:
    """Positions of up to ``count`` slices spread over the middle half of a stack of ``num_slices``."""
    return [int(i) for i in np.unique(np.linspace(num_slices // 4, 3 * num_slices // 4, count).astype(int))]


def slice_caption(target: np.ndarray, image: np.ndarray, data_range: float) -> str:
    """PSNR/SSIM of one slice ``(H, W)`` against its target, with the volume's data range."""
    gt, pred = crop_like_fastmri(target[None], image[None])
    return metrics_caption(psnr(gt, pred, data_range), ssim(gt, pred, data_range))


def write_panel(path: Path, images: dict[str, np.ndarray], target: np.ndarray | None, std: np.ndarray | None,
                rows: Sequence[int], row_labels: Sequence[str], *, overwrite: bool = False) -> Path:
    """Write a panel of ``rows`` (positions in the stacks) with colour bars and PSNR/SSIM captions.

    Args:
        path: the PNG.
        images: the methods to show, in order (e.g. ``{"zero-filled": zf, "mridiff": mean}``), each float32
            ``(S, H, W)``; the last one is the one whose error is shown.
        target: the reference ``(S, H, W)``, or ``None`` (no target or error column, no captions).
        std: the per-pixel std over samples ``(S, H, W)``, or ``None`` for K = 1 (no std column).
        rows: positions of the slices to show.
        row_labels: one label per row (e.g. ``slice 12``).
        overwrite: replace an existing file.

    Returns:
        ``path``.

    """
    names = list(images)
    main = images[names[-1]]
    vmax = float(np.percentile(target if target is not None else main, 99.5)) or 1.0
    data_range = float(np.max(target)) if target is not None else 1.0
    grid: list[list[np.ndarray | None]] = []
    notes: list[list[str | None]] = []
    for i in rows:
        cells: list[np.ndarray | None] = [images[n][i] for n in names]
        captions: list[str | None] = [None] * len(names)
        if target is not None:
            captions = [slice_caption(target[i], images[n][i], data_range) for n in names]
        cells += [None if target is None else target[i],
                  None if target is None else np.abs(main[i] - target[i]),
                  None if std is None else std[i]]
        grid.append(cells)
        notes.append([*captions, None, None, None])
    labels = [*names, "target", f"|error| x{ERROR_GAIN}", f"std x{ERROR_GAIN}"]
    vmaxes: list[float | None] = [*([vmax] * (len(names) + 1)), vmax / ERROR_GAIN, vmax / ERROR_GAIN]
    panel_png(grid, labels, path, vmaxes=vmaxes, overwrite=overwrite, row_labels=list(row_labels), colourbars=True,
              annotations=notes)
    return path


def write_risk_panel(path: Path, mean: np.ndarray, half_width: np.ndarray, risk: Sequence[float], rows: Sequence[int],
                     row_labels: Sequence[str], *, overwrite: bool = False) -> Path:
    """Write the hallucination-risk view: each picked slice's mean with its calibrated half-width as a heat overlay.

    One column per slice, labelled with the slice and its risk score (the fraction of object pixels whose
    calibrated interval is wide, see :func:`mridiff.inference.calibration.risk_score`); a colour bar gives the
    half-width in image units, on one scale for all slices.

    Args:
        path: the PNG.
        mean: the reconstruction ``(S, H, W)``.
        half_width: the calibrated half-width ``(S, H, W)`` (``Interval.std_calibrated``).
        risk: the per-slice risk scores ``(S,)``.
        rows: positions of the slices to show.
        row_labels: one label per shown slice.
        overwrite: replace an existing file.

    Returns:
        ``path``.

    """
    vmax = float(np.percentile(mean, 99.5)) or 1.0
    top = float(np.percentile(half_width, 99.5)) or 1.0
    columns = [overlay_rgb(mean[i], half_width[i], vmax, top) for i in rows]
    labels = [f"{label} risk {100 * risk[i]:.0f}%" for label, i in zip(row_labels, rows, strict=True)]
    colour_panel_png(columns, labels, path, colourbar=("half-width", top), overwrite=overwrite)
    return path

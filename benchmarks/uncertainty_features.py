"""Can a map made from one scan rank the error inside the object better than the K-sample std? (validation only)

Issue 12 asks Spearman(uncertainty, |error|) >= 0.5; over the whole image the smoothed std of K = 4 samples reaches
it, inside the object it does not. This benchmark tries the candidate maps that need no truth, on validation slices of
the real-image set (``data_prep.cheng`` val split; the test folder is never read), every mode reconstructed once
(balanced preset, hard DC, K samples):

* ``std``: the K-sample std smoothed as the calibration smooths it (what the intervals use);
* ``fit``: a least-squares fit of log |error| on log features: the std at 1.5, 4 and 8 px and raw, the gradient
  magnitude of the mean at 1 and 4 px, the mean at 0 and 4 px, |mean - zero-filled| at 1.5 and 6 px; fitted on the
  other slices (leave one slice out), so each slice is scored by a map it did not fit;
* ``bootstrap``: a parametric bootstrap: k-space simulated afresh from the mean (the data set's coil count, smooth
  phase, noise at 30 dB), reconstructed with the same mask (``--boot`` replicates of one sample), |recon - mean|
  smoothed like the std;
* ``bootstrap+std``: their sum.

Spearman is the mean over slices, over the object (mean above 5 % of its 99th percentile) and the whole image.

    python benchmarks/uncertainty_features.py --slices 6 --modes singlecoil:4 singlecoil:8 multicoil:4 multicoil:8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from scipy.ndimage import gaussian_filter, sobel
from scipy.stats import spearmanr

from mridiff.data.simulate import simulate_kspace
from mridiff.inference.calibration import STD_SMOOTHING_PX, foreground, scale_of, smooth_std
from mridiff.inference.options import preset_options
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.physics.masks import MaskSpec, make_mask


def load(root: Path, n: int, multicoil: bool) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evenly spaced validation files: k-space and targets."""
    files = sorted((root / ("multicoil_val" if multicoil else "singlecoil_val")).glob("*.h5"))
    if not files:
        raise SystemExit(f"{root}: no validation files (run `mridiff prepare cheng {root}`)")
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]
    ks, gts = [], []
    for path in picks:
        with h5py.File(path, "r") as fh:
            ks.append(np.asarray(fh["kspace"][0]))
            gts.append(np.asarray(fh["reconstruction_rss" if multicoil else "reconstruction_esc"][0]))
    return np.stack(ks), np.stack(gts)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(x, (0, sigma, sigma), mode="nearest")


def features(mean: np.ndarray, std: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Log features (S, H, W, F) of one scan's outputs, scaled by each slice's 99th percentile."""
    scale = scale_of(mean)
    m, s, b = mean / scale, std / scale, baseline / scale
    grad = np.hypot(sobel(m, axis=1), sobel(m, axis=2)) / 8.0
    fill = np.abs(m - b)
    maps = [_blur(s, 1.5), _blur(s, 4), _blur(s, 8), s, _blur(grad, 1), _blur(grad, 4), m, _blur(m, 4),
            _blur(fill, 1.5), _blur(fill, 6)]
    return np.log(np.stack(maps, axis=-1) + 1e-3)


def loo_fit(feats: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Leave-one-slice-out least-squares prediction of log |error| (relative to the slice scale)."""
    y = np.log(err + 1e-3)
    out = np.empty_like(y)
    flat = feats.reshape(len(y), -1, feats.shape[-1])
    for i in range(len(y)):
        rest = [j for j in range(len(y)) if j != i]
        x = np.concatenate([flat[j] for j in rest])
        w = np.linalg.lstsq(np.c_[x, np.ones(len(x))], np.concatenate([y[j].ravel() for j in rest]), rcond=None)[0]
        out[i] = (np.c_[flat[i], np.ones(len(flat[i]))] @ w).reshape(y[i].shape)
    return out


def spearman(u: np.ndarray, err: np.ndarray, masks: np.ndarray) -> float:
    """Mean over slices of Spearman(u, |error|) within each slice's mask."""
    return float(np.mean([spearmanr(u[i][masks[i]], err[i][masks[i]]).statistic for i in range(len(err))]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--data", default="work_data/cheng256")
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--modes", nargs="+", default=["singlecoil:4", "singlecoil:8", "multicoil:4", "multicoil:8"])
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--boot", type=int, default=2, help="bootstrap replicates (one sample each)")
    p.add_argument("--out", default="benchmarks/results/uncertainty_features")
    args = p.parse_args()
    start = time.perf_counter()
    rec = Reconstructor(args.model)
    opts = preset_options("balanced", dc="hard", samples=args.samples, seed=7)
    rows: list[dict[str, Any]] = []
    for mode in args.modes:
        coil, acc_text = mode.split(":")
        multicoil, acc = coil == "multicoil", int(acc_text)
        kspace, truth = load(Path(args.data), args.slices, multicoil)
        masks = np.stack([make_mask(MaskSpec("random", acc), kspace.shape[-2:], 500 + i).numpy()
                          for i in range(len(kspace))])
        res = rec.reconstruct(kspace, masks, opts, multicoil=multicoil)
        err = np.abs(truth - res.mean)
        scale = scale_of(res.mean)
        std = smooth_std(res.std, STD_SMOOTHING_PX)
        fitted = loo_fit(features(res.mean, res.std, res.baseline), err / scale)
        rng = np.random.default_rng(0)
        boots = []
        for b in range(args.boot):
            sim = np.stack([simulate_kspace(m, 8 if multicoil else 0, rng, snr_db=30.0).kspace for m in res.mean])
            again = rec.reconstruct(sim, masks, preset_options("balanced", dc="hard", samples=1, seed=100 + b),
                                    multicoil=multicoil)
            boots.append(np.abs(again.mean - res.mean))
        boot = smooth_std(np.mean(boots, axis=0), STD_SMOOTHING_PX)
        regions = {"whole image": np.ones_like(err, dtype=bool), "object": foreground(res.mean)}
        for name, u in (("std", std), ("fit", fitted), ("bootstrap", boot), ("bootstrap+std", boot + std)):
            row = {"mode": mode, "map": name, **{r: spearman(u, err, m) for r, m in regions.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"Uncertainty maps from one scan, validation only, {time.strftime('%Y-%m-%d')}, {platform.machine()} "
            f"CPU, {os.cpu_count()} cores, torch {torch.__version__}, {time.perf_counter() - start:.0f} s. "
            f"{args.slices} files per mode from {args.data}'s val split (real clinical images, simulated k-space at "
            f"30 dB), balanced preset, hard DC, K={args.samples}, bootstrap {args.boot} x 1 sample. Mean over slices "
            "of Spearman(map, |error|), whole image / object.\n\n")
    table = ["| mode | std | fit (leave one slice out) | bootstrap | bootstrap + std |", "|---|---|---|---|---|"]
    for mode in args.modes:
        cells = {r["map"]: f"{r['whole image']:.2f} / {r['object']:.2f}" for r in rows if r["mode"] == mode}
        table.append(f"| {mode}x | {cells['std']} | {cells['fit']} | {cells['bootstrap']} | {cells['bootstrap+std']} |")
    atomic_write_text(out.with_suffix(".md"), head + "\n".join(table) + "\n", overwrite=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n", overwrite=True)
    print(head + "\n".join(table))


if __name__ == "__main__":
    main()

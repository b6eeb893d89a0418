"""Choose the coil-map estimate on validation: PSNR, SSIM and Spearman(std, |error|) of 8-coil reconstructions.

Only the multi-coil validation split of ``data_prep.cheng`` is read (real clinical images, simulated 8-coil
k-space at 30 dB); the test folder never is. Every variant reconstructs the same slices with the same masks and
seeds (balanced preset, hard DC, K samples); the variants differ only in the coil maps handed to the
reconstruction:

* ``espirit-crop``: ESPIRiT with sigpy's eigenvalue crop 0.95 (maps zero outside the object);
* ``espirit``: ESPIRiT over the whole field of view (the default, :data:`mridiff.physics.coils.ESPIRIT_CROP`);
* ``jsense-support``: JSENSE cut to the low-resolution support (the default before 2026-12-07);
* ``jsense``: JSENSE over the whole field of view (the default);
* ``true``: the maps the k-space was simulated with (stored in the files): the ceiling of any estimate.

Below 12 fully sampled lines (8x at 256²) ESPIRiT falls back to JSENSE, so the ESPIRiT rows of 8x repeat JSENSE's.

    python benchmarks/coil_maps.py --slices 6 --accelerations 4 8
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from scipy.stats import spearmanr

from mridiff.inference.calibration import STD_SMOOTHING_PX, smooth_std
from mridiff.inference.options import preset_options
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.metrics import volume_metrics
from mridiff.physics.coils import espirit_maps, jsense_maps
from mridiff.physics.masks import MaskSpec, make_mask

VARIANTS = ("espirit-crop", "espirit", "jsense-support", "jsense", "true")
_ESTIMATORS = {
    "espirit-crop": functools.partial(espirit_maps, crop=0.95),
    "espirit": espirit_maps,
    "jsense-support": functools.partial(jsense_maps, support=0.02),
    "jsense": jsense_maps,
}


def load(root: Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` evenly spaced validation files: k-space (n, C, H, W), RSS targets (n, H, W), true maps (n, C, H, W)."""
    files = sorted(root.glob("*.h5"))
    if not files:
        raise SystemExit(f"{root}: no validation files (run `mridiff prepare cheng work_data/cheng256`)")
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]
    ks, gts, maps = [], [], []
    for path in picks:
        with h5py.File(path, "r") as fh:
            ks.append(np.asarray(fh["kspace"][0]))
            gts.append(np.asarray(fh["reconstruction_rss"][0]))
            maps.append(np.asarray(fh["sens_maps"][0]))
    return np.stack(ks), np.stack(gts), np.stack(maps)


def spearman(std: np.ndarray, err: np.ndarray) -> float:
    """Mean over slices of Spearman(smoothed std, |error|) over the whole image (as the calibration benchmark)."""
    s = smooth_std(std, STD_SMOOTHING_PX)
    return float(np.mean([spearmanr(s[i].ravel(), err[i].ravel()).statistic for i in range(len(err))]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="recon model (default: the bundled one)")
    p.add_argument("--data", default="work_data/cheng256/multicoil_val")
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/coil_maps")
    args = p.parse_args()
    if "val" not in Path(args.data).name:
        raise SystemExit(f"{args.data}: pass a validation folder; this benchmark chooses a method")
    start = time.perf_counter()
    kspace, truth, true_maps = load(Path(args.data), args.slices)
    rec = Reconstructor(args.model)
    opts = preset_options("balanced", dc="hard", samples=args.samples, seed=7)
    rows: list[dict[str, Any]] = []
    for acc in args.accelerations:
        masks = np.stack([make_mask(MaskSpec("random", acc), kspace.shape[-2:], 500 + i).numpy()
                          for i in range(len(kspace))])
        for variant in args.variants:
            t0 = time.perf_counter()
            if variant == "true":
                maps = torch.from_numpy(true_maps)
            else:
                k, m = torch.from_numpy(kspace), torch.from_numpy(masks)
                maps = torch.stack([_ESTIMATORS[variant](k[i], m[i]) for i in range(len(k))])
            res = rec.reconstruct(kspace, masks, opts, multicoil=True, sens=maps)
            per_slice = [volume_metrics(truth[i:i + 1], res.mean[i:i + 1]) for i in range(len(truth))]
            row = {"acceleration": acc, "maps": variant,
                   "psnr": float(np.mean([m["PSNR"] for m in per_slice])),
                   "ssim": float(np.mean([m["SSIM"] for m in per_slice])),
                   "spearman": spearman(res.std, np.abs(truth - res.mean)),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"Coil maps on validation, {time.strftime('%Y-%m-%d')}, {platform.machine()} CPU, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {time.perf_counter() - start:.0f} s. {len(kspace)} files of {args.data} "
            f"(real clinical images, simulated 8-coil k-space at 30 dB), 1D random masks, balanced preset, hard DC, "
            f"mean of K={args.samples}; PSNR/SSIM per slice against the RSS target (mridiff.metrics); Spearman of the "
            f"std (smoothed {STD_SMOOTHING_PX:g} px) with |error| over the whole image.\n\n")
    table = ["| acceleration | coil maps | PSNR (dB) | SSIM | Spearman | seconds |", "|---|---|---|---|---|---|"]
    table += [f"| {r['acceleration']}x | {r['maps']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['spearman']:.2f} | "
              f"{r['seconds']:.0f} |" for r in rows]
    atomic_write_text(out.with_suffix(".md"), head + "\n".join(table) + "\n", overwrite=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n", overwrite=True)
    print(head + "\n".join(table))


if __name__ == "__main__":
    main()

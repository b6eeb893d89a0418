"""How well can any uncertainty map rank the errors? A ceiling for Spearman(std, |error|), measured on validation.

Issue 12 asks for Spearman(std, |error|) >= 0.5 in every mode. A per-pixel map that knows everything about a scan
except the noise realisation of its k-space and the sampler's random numbers can at best predict the *expected*
error at each pixel, not the error of this one reconstruction. This script measures that limit directly: for each
validation slice it simulates M k-space realisations of the same image (same phase, coil maps and mask; fresh
noise at the data set's SNR; fresh sampler seeds; each with its own fastMRI target, the RSS or magnitude of its
noisy fully sampled k-space, as in the data sets and benchmarks), reconstructs each one with the mode's settings
(K samples, hard DC), and ranks the error of realisation 1 by the mean error of realisations 2..M at each pixel, the
"distribution oracle" (it sees the true image; no map made from one scan can know more). Beside it: the K-sample
std of realisation 1 (what mridiff reports, smoothed like the calibrated intervals) and the oracle smoothed like
the std map. The oracle estimated from M-1 realisations is itself noisy, so the script reports it for growing M:
if it levels off below 0.5, no uncertainty map can reach 0.5 in that mode.

Validation slices only (``data_prep.cheng``'s val split; the test folder is never read). Real clinical images,
simulated k-space.

    python benchmarks/uncertainty_ceiling.py --variants multicoil --accelerations 4 --slices 6 --realisations 9
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import by_number, evenly_spaced  # noqa: E402

from mridiff.data.fastmri_h5 import open_scan, read_slice  # noqa: E402
from mridiff.data.simulate import add_complex_noise, ifft2c_np, simulate_kspace  # noqa: E402
from mridiff.inference.calibration import foreground, smooth_std  # noqa: E402
from mridiff.inference.options import preset_options  # noqa: E402
from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.io.atomic import atomic_write_text  # noqa: E402
from mridiff.physics.masks import MaskSpec, make_mask  # noqa: E402


def realisations(target: np.ndarray, coils: int, m: int, snr_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` noisy k-spaces of one image (shared phase and coil maps, fresh noise) and their targets.

    The targets follow fastMRI and ``mridiff prepare``: the RSS (multi-coil) or magnitude (single-coil) of the
    fully sampled *noisy* k-space, so every realisation has its own target, as the benchmarks measure it.
    """
    clean = simulate_kspace(target, coils if coils > 1 else 0, np.random.default_rng([seed, 0]), snr_db=None).kspace
    noisy = np.stack([add_complex_noise(clean, snr_db, np.random.default_rng([seed, 1 + r])) for r in range(m)])
    images = ifft2c_np(noisy.astype(np.complex128))
    truth = np.sqrt((np.abs(images) ** 2).sum(axis=1)) if coils > 1 else np.abs(images)
    return noisy, truth.astype(np.float32)


def rho(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Spearman correlation of two maps over ``mask``."""
    return float(spearmanr(a[mask], b[mask]).statistic)


def measure(rec: Reconstructor, item: Path, multicoil: bool, acceleration: int, m: int, samples: int, steps: int,
            smoothing: float, snr_db: float, seed: int) -> dict[str, Any]:
    """Spearman of the std and of the distribution oracle (for M' = 2..m-1 other realisations) on one slice."""
    scan = open_scan(item)
    target = np.asarray(read_slice(scan, scan.num_slices // 2).target, dtype=np.float64)
    kspace, truth = realisations(target, 8 if multicoil else 1, m, snr_db, seed)
    mask = make_mask(MaskSpec("random", acceleration), kspace.shape[-2:], 1000 + seed).numpy()
    opts = preset_options("balanced", sampler="ddim", steps=steps, dc="hard", samples=samples, seed=seed + 1)
    # one batch of m "slices": each realisation gets its own sampler seeds (the batch index)
    res = rec.reconstruct(kspace, np.stack([mask] * m), opts, multicoil=multicoil)
    err = np.abs(np.asarray(res.mean, dtype=np.float64) - truth)
    std = smooth_std(np.asarray(res.std[:1], dtype=np.float64), smoothing)[0]
    regions = {"whole image": np.ones(truth.shape[1:], dtype=bool), "object": foreground(res.mean[:1])[0]}
    out: dict[str, Any] = {"file": item.name, "std": {}, "oracle": {}, "oracle_smoothed": {}}
    for name, region in regions.items():
        out["std"][name] = rho(std, err[0], region)
        out["oracle"][name] = {str(k): rho(err[1:1 + k].mean(axis=0), err[0], region) for k in range(2, m)}
        out["oracle_smoothed"][name] = {
            str(k): rho(smooth_std(err[1:1 + k].mean(axis=0), smoothing), err[0], region) for k in range(2, m)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="recon model (default: the bundled one)")
    p.add_argument("--data", default="work_data/cheng256", help="data_prep.cheng output (its val split is read)")
    p.add_argument("--variants", nargs="+", default=["singlecoil", "multicoil"])
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    p.add_argument("--slices", type=int, default=6, help="validation files, spread over the sorted names")
    p.add_argument("--realisations", type=int, default=9, help="M noisy k-spaces per slice")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--snr-db", type=float, default=30.0, help="the data set's simulated SNR (mridiff prepare cheng)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/uncertainty_ceiling")
    args = p.parse_args()
    start = time.perf_counter()
    rec = Reconstructor(args.model, device="cpu")
    smoothing = float((rec.model.meta.get("calibration") or {}).get("std_smoothing_px", 1.5))
    rows = []
    for variant in args.variants:
        files = evenly_spaced(sorted((Path(args.data) / f"{variant}_val").glob("*.h5"), key=by_number), args.slices)
        for acc in args.accelerations:
            per = [measure(rec, f, variant == "multicoil", acc, args.realisations, args.samples, args.steps,
                           smoothing, args.snr_db, args.seed + i) for i, f in enumerate(files)]
            row = {"mode": f"{variant}:{acc}x:hard:K{args.samples}", "slices": len(per), "per_slice": per}
            for key in ("std", "oracle", "oracle_smoothed"):
                row[key] = {}
                for region in ("whole image", "object"):
                    vals = [s[key][region] for s in per]
                    row[key][region] = (float(np.mean(vals)) if key == "std" else
                                        {k: float(np.mean([v[k] for v in vals])) for k in vals[0]})
            print(json.dumps({k: v for k, v in row.items() if k != "per_slice"}), flush=True)
            rows.append(row)
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    top = str(args.realisations - 1)
    header = (f"Spearman ceiling, {time.strftime('%Y-%m-%d')}, {machine}, {time.perf_counter() - start:.0f} s. "
              f"Model {rec.model.path.name} ({rec.model.meta.get('sha256', '')[:12]}). Validation only (cheng val "
              f"split, {args.slices} files per mode; real clinical images, simulated k-space at {args.snr_db:g} dB), "
              f"ddim-{args.steps}, K={args.samples}, hard DC; M={args.realisations} k-space realisations per slice. "
              "std: Spearman(K-sample std of realisation 1, smoothed by "
              f"{smoothing:g} px, |error| of realisation 1). Oracle(M'): Spearman(mean |error| of M' other "
              "realisations, |error| of realisation 1): the expected error at each pixel, which no map made from one "
              "scan can beat; raw and smoothed like the std map. Means over slices; whole image / object.")
    lines = [header, "", "| mode | slices | std | oracle M'=2 | oracle M'=4 | oracle M'=" + top
             + " | oracle smoothed M'=" + top + " |", "|---|---|---|---|---|---|---|"]

    def pair(d: dict[str, Any], k: str | None = None) -> str:
        w, o = (d["whole image"], d["object"]) if k is None else (d["whole image"][k], d["object"][k])
        return f"{w:.2f} / {o:.2f}"

    for r in rows:
        lines.append(f"| {r['mode']} | {r['slices']} | {pair(r['std'])} | {pair(r['oracle'], '2')} | "
                     f"{pair(r['oracle'], str(min(4, args.realisations - 1)))} | {pair(r['oracle'], top)} | "
                     f"{pair(r['oracle_smoothed'], top)} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"),
                      json.dumps({"header": header, "rows": rows}, indent=2) + "\n", overwrite=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

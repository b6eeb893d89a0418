"""Quality against time per slice for sampler settings, beside sigpy L1-wavelet CS, in one run on the same slices.

The curve the reconstruction presets (``--preset fast|balanced|best``) are chosen from. For each slice, CS and
every sampler setting run one after another at batch size 1 (so the timing ratios hold on a noisy shared machine:
each method sees the same load), with hard data consistency and K=1. CS weights are tuned on validation slices
that are not measured. ``--split val`` (default) measures other validation slices, which is what presets are
chosen on; ``--split test`` reports the chosen presets on the test folder and chooses nothing. Real clinical images,
simulated k-space (``python -m data_prep.cheng work_data/cheng256``).

    python benchmarks/presets.py --ckpt training_state/recon_real.safetensors --slices 8
    python benchmarks/presets.py --variant multicoil --acc 8 --settings ddim:20 dpmpp2m:10
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import Case, by_number, cs_recon, evenly_spaced, tune_lambda  # noqa: E402

from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.io.atomic import atomic_write_text  # noqa: E402
from mridiff.metrics import psnr, ssim  # noqa: E402

REAL = Path("work_data/cheng256")
LAMBDAS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
DEFAULT_SETTINGS = ["ddim:50", "ddim:20", "ddim:10", "dpmpp2m:20", "dpmpp2m:10", "dpmpp2m:6", "dpmpp2m:4"]


def items(variant: str, split: str, n: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(measured slices, CS-tuning slices): disjoint; the tuning slices always come from validation."""
    val = sorted((REAL / f"{variant}_val").glob("*.h5"), key=by_number)
    spread = evenly_spaced(val, 2 * n)
    tune = [(f, 0) for f in spread[1::2][: max(2, n // 2)]]
    if split == "val":
        return [(f, 0) for f in spread[0::2][:n]], tune
    test = sorted((REAL / f"{variant}_test").glob("*.h5"), key=by_number)
    return [(f, 0) for f in evenly_spaced(test, n)], tune


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=None, help="exported recon model (default: the bundled one)")
    p.add_argument("--split", choices=["val", "test"], default="val")
    p.add_argument("--variant", choices=["singlecoil", "multicoil"], default="singlecoil")
    p.add_argument("--acc", type=int, default=4)
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="sampler:steps[:dc] entries")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/presets")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    measured, tuning = items(args.variant, args.split, args.slices)
    lam, _ = tune_lambda([Case([it], [], args.acc, args.seed) for it in tuning], "l1wavelet", LAMBDAS)
    rec = Reconstructor(args.ckpt, device="cpu")
    plan = [s.split(":") for s in args.settings]
    names = ["sigpy L1-wavelet CS"] + [f"{s[0].upper()}-{s[1]} + {s[2] if len(s) > 2 else 'hard'} DC" for s in plan]
    seconds = {n: 0.0 for n in names}
    scores: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    zf_scores: list[tuple[float, float]] = []
    for item in measured:
        case = Case([item], [], args.acc, args.seed)
        gt, vmax = case.gt[0], float(case.gt.max())
        zf = np.abs(case.problem.cond.numpy()[0]) * float(case.problem.scale[0])
        zf_scores.append((psnr(gt, zf, vmax), ssim(gt[None], zf[None], vmax)))
        t0 = time.perf_counter()
        pred = cs_recon(case, "l1wavelet", lam)[0]
        seconds[names[0]] += time.perf_counter() - t0
        scores[names[0]].append((psnr(gt, pred, vmax), ssim(gt[None], pred[None], vmax)))
        for name, s in zip(names[1:], plan, strict=True):
            t0 = time.perf_counter()
            res = rec.reconstruct(case.kspace, case.mask, multicoil=case.multicoil, sampler=s[0], steps=int(s[1]),
                                  dc=s[2] if len(s) > 2 else "hard", samples=1, seed=args.seed, batch_size=1,
                                  sens=case.sens)
            seconds[name] += time.perf_counter() - t0
            scores[name].append((psnr(gt, res.mean[0], vmax), ssim(gt[None], res.mean[0][None], vmax)))
        print(json.dumps({"slice": str(item[0].name), **{n: v[-1] for n, v in scores.items()}}), flush=True)
    n = len(measured)
    base_cs = seconds[names[0]] / n
    ref = next((nm for nm in names if nm.startswith("DDIM-50")), names[1])
    rows: list[dict[str, Any]] = [{"method": "zero-filled", "PSNR": float(np.mean([a for a, _ in zf_scores])),
                                   "SSIM": float(np.mean([b for _, b in zf_scores])), "seconds_per_slice": 0.0}]
    for name in names:
        rows.append({"method": name, "PSNR": float(np.mean([a for a, _ in scores[name]])),
                     "SSIM": float(np.mean([b for _, b in scores[name]])), "seconds_per_slice": seconds[name] / n,
                     "time_vs_cs": seconds[name] / n / base_cs, "speedup_vs_ref": seconds[ref] / seconds[name]})
    machine = (f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}")
    header = (f"Presets curve, {time.strftime('%Y-%m-%d')}, {machine}, {time.perf_counter() - start:.0f} s. "
              f"Real clinical images, simulated k-space: {n} {args.split} slices ({args.variant}, 256², "
              f"{args.acc}x 1D random mask), batch 1, K=1, model {rec.model.path.name} "
              f"({str(rec.model.meta.get('sha256', ''))[:12]}); CS lambda {lam:g} tuned on {len(tuning)} other "
              "validation slices. One run; compare ratios.")
    lines = [header, "", f"| method | PSNR | SSIM | s/slice | time / CS | speed-up vs {ref} |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | {r['seconds_per_slice']:.2f} | "
                     f"{r.get('time_vs_cs', 0):.2f} | {r.get('speedup_vs_ref', 0):.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"),
                      json.dumps({"header": header, "rows": rows, "lambda": lam}, indent=2), overwrite=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

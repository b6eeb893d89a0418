"""Reconstruction quality on held-out data: zero-filled vs mridiff (DDIM-50 with/without DC, DDPM-1000 with DC).

Protocol (../shared/docs/evaluation.md): train on the MNI152 templates (simulated k-space), test on Colin27
(a different, single subject, never trained on), same slices and the same seeded 1D random masks for every
method, metrics as fastmri.evaluate on magnitudes. Simulated k-space, so label results as such.

    python benchmarks/recon_quality.py --train-minutes 30            # trains configs/recon_tiny.yaml first
    python benchmarks/recon_quality.py --ckpt runs/recon_tiny/model.safetensors --slices 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mridiff.config import load_config
from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.metrics import psnr, volume_metrics
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.training.run import train
from mridiff.workflows.recon import volume_seed

# test: Colin27, never trained on (report these); val: held-out template slices (tune recipes on these).
SPLIT_FILES = {"test": ("work_data/default/{variant}_test/colin27.h5", "Colin27"),
               "val": ("work_data/default/{variant}_val/mni152_2009a_val.h5", "MNI152 2009a validation slices")}


def methods(steps: int, ddpm_steps: int | None) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"DDIM-{steps} + DC", {"sampler": "ddim", "steps": steps, "dc": "hard"}),
           (f"DDIM-{steps}, no DC", {"sampler": "ddim", "steps": steps, "dc": "none"})]
    if ddpm_steps:
        out.append((f"DDPM-{ddpm_steps} + DC", {"sampler": "ddpm", "steps": ddpm_steps, "dc": "hard"}))
    return out


def evaluate(rec: Reconstructor, variant: str, slices: list[int], accs: list[int], steps: int, ddpm_slices: int,
             seed: int, ddpm_cases: list[str], split: str = "test") -> list[dict[str, Any]]:
    path, label = SPLIT_FILES[split]
    info = open_scan(path.format(variant=variant))
    data = [read_slice(info, i) for i in slices]
    kspace = np.stack([d.kspace for d in data])
    gt = np.stack([d.target for d in data if d.target is not None])
    rows = []
    for acc in accs:
        mask = make_mask(MaskSpec("random", acc), info.encoded_size, volume_seed(info.path, seed))
        zf_done = False
        with_ddpm = ddpm_slices > 0 and (not ddpm_cases or f"{variant}:{acc}" in ddpm_cases)
        dc_rows: dict[str, Any] = {}
        for name, kw in methods(steps, rec.model.schedule.num_train_timesteps if with_ddpm else None):
            n = ddpm_slices if kw["sampler"] == "ddpm" else len(slices)
            start = time.perf_counter()
            res = rec.reconstruct(kspace[:n], mask, multicoil=info.multicoil, samples=1, seed=seed, batch_size=n,
                                  **kw)
            seconds = (time.perf_counter() - start) / n
            if not zf_done:
                rows.append(row(label, variant, acc, "zero-filled", gt, res.zero_filled, n, 0.0, 0))
                zf_done = True
            rows.append(row(label, variant, acc, name, gt[:n], res.mean, n, seconds, res.nfe))
            print(json.dumps(rows[-1]), flush=True)
            if kw["sampler"] == "ddim" and kw["dc"] == "hard":
                dc_rows = {"name": name, "mean": res.mean, "seconds": seconds, "nfe": res.nfe}
            elif kw["sampler"] == "ddpm" and dc_rows and n < len(slices):
                # DDPM (all T steps) runs on fewer slices: give DDIM on exactly those slices too, for a fair comparison.
                rows.append(row(label, variant, acc, f"{dc_rows['name']} (the DDPM slices)", gt[:n],
                                dc_rows["mean"][:n], n, dc_rows["seconds"], dc_rows["nfe"]))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def row(label: str, variant: str, acc: int, method: str, gt: np.ndarray, pred: np.ndarray, n: int, seconds: float,
        nfe: int) -> dict[str, Any]:
    m = volume_metrics(gt[:n], pred[:n])
    per_slice = [psnr(g, p, float(gt[:n].max())) for g, p in zip(gt[:n], pred[:n], strict=True)]
    return {"data": f"{label} {variant} (simulated k-space)", "acceleration": acc, "method": method, "slices": n,
            **m, "PSNR_slice_std": float(np.std(per_slice)), "seconds_per_slice": seconds, "nfe": nfe}


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| data | accel | method | slices | NMSE | PSNR (dB) | SSIM | s/slice | NFE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['acceleration']}x | {r['method']} | {r['slices']} | {r['NMSE']:.4f} | "
                     f"{r['PSNR']:.2f} ± {r['PSNR_slice_std']:.2f} | {r['SSIM']:.4f} | "
                     f"{r['seconds_per_slice']:.2f} | {r['nfe']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/recon_tiny.yaml")
    p.add_argument("--train-minutes", type=float, default=30.0)
    p.add_argument("--ckpt", help="evaluate this exported model instead of training one")
    p.add_argument("--slices", type=int, default=6, help="test slices per volume (evenly spaced, central)")
    p.add_argument("--ddpm-slices", type=int, default=2, help="slices for DDPM-1000 (0 to skip)")
    p.add_argument("--ddpm-cases", nargs="*", default=[],
                   help="limit DDPM-1000 to these variant:acceleration cases, e.g. singlecoil:4 (CPU time)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--variants", nargs="+", default=["singlecoil", "multicoil"])
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=sorted(SPLIT_FILES), default="test",
                   help="test: Colin27 (report); val: template validation slices (choose recipes here)")
    p.add_argument("--out", default="benchmarks/results/recon_quality")
    args = p.parse_args()
    ckpt = args.ckpt
    train_info: dict[str, Any] = {"ckpt": ckpt}
    if ckpt is None:
        cfg = load_config(args.config)
        cfg.train.max_minutes = args.train_minutes
        start = time.perf_counter()
        ckpt = str(train(cfg, progress=False))
        train_info = {"config": args.config, "train_minutes": args.train_minutes,
                      "train_seconds": time.perf_counter() - start, "ckpt": ckpt}
    meta = json.loads(Path(ckpt).with_suffix(".json").read_text())
    train_info["global_step"] = meta.get("training", {}).get("global_step")
    rec = Reconstructor(ckpt, device="cpu")
    rows: list[dict[str, Any]] = []
    for variant in args.variants:
        n = open_scan(SPLIT_FILES[args.split][0].format(variant=variant)).num_slices
        slices = np.linspace(0.3 * n, 0.7 * n, args.slices).astype(int).tolist()
        rows += evaluate(rec, variant, slices, args.accelerations, args.steps, args.ddpm_slices, args.seed,
                         args.ddpm_cases, args.split)
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    header = (f"Reconstruction quality, {time.strftime('%Y-%m-%d')}, {machine}. Model: {train_info}. "
              f"Train: MNI152 templates; test: {SPLIT_FILES[args.split][1]} (never trained on); "
              "k-space simulated (8 coils for multi-coil, smooth phase, 30 dB SNR); 1D random masks, centre "
              "fraction 0.08 (4x) / 0.04 (8x), seeded per volume; "
              "metrics as fastmri.evaluate on the slices listed (PSNR ± per-slice std).")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out + ".json"),
                      json.dumps({"header": header, "train": train_info, "rows": rows}, indent=2), overwrite=True)
    atomic_write_text(Path(args.out + ".md"), markdown(rows, header), overwrite=True)
    print(markdown(rows, header))


if __name__ == "__main__":
    main()

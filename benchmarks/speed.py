"""Speed in one run: training images/s, reconstruction seconds per slice per step count, sampler overhead, memory.

Everything is measured in the same process, one after another, so the ratios between rows hold on a noisy shared
machine even when the absolute numbers drift. Network time is measured with forward hooks on the U-Net (CUDA is
synchronised around each call), so "sampler overhead" is all reconstruction time outside network evaluations:
the DDIM/DDPM update, data consistency (FFTs, CG), noise draws, normalisation and coil-map estimation.

    python benchmarks/speed.py                       # bundled model on the Colin27 test slices
    python benchmarks/speed.py --ddpm --slices 4     # adds DDPM-1000 (100+ s per slice on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import model_config, train_throughput  # noqa: E402

from mridiff.data.fastmri_h5 import open_scan, read_slice  # noqa: E402
from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.io.atomic import atomic_write_text  # noqa: E402
from mridiff.physics.masks import MaskSpec, make_mask  # noqa: E402

TEST = "work_data/default/{variant}_test/colin27.h5"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class NetTimer:
    """Sums wall-clock seconds spent inside a module's forward calls."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds, self.calls, self._t0 = 0.0, 0, 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _pre(self, *_: Any) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def recon_rows(rec: Reconstructor, timer: NetTimer, variant: str, slices: int, plans: list[tuple[str, int]],
               seed: int) -> list[dict[str, Any]]:
    info = open_scan(TEST.format(variant=variant))
    idx = np.linspace(0.3 * info.num_slices, 0.7 * info.num_slices, slices).astype(int)
    kspace = np.stack([read_slice(info, int(i)).kspace for i in idx])
    mask = make_mask(MaskSpec("random", 4), info.encoded_size, seed)
    rec.reconstruct(kspace[:1], mask, multicoil=info.multicoil, steps=2)  # warm-up (allocator, ESPIRiT imports)
    rows = []
    for sampler, steps in plans:
        timer.reset()
        start = time.perf_counter()
        res = rec.reconstruct(kspace, mask, multicoil=info.multicoil, steps=steps, sampler=sampler, seed=seed,
                              batch_size=slices)
        total = time.perf_counter() - start
        rows.append({"what": "reconstruct", "variant": variant, "sampler": sampler, "nfe": res.nfe,
                     "slices": slices, "s_per_slice": total / slices, "network_s_per_slice": timer.seconds / slices,
                     "sampler_overhead_fraction": max(total - timer.seconds, 0.0) / total,
                     "peak_rss_GiB_so_far": peak_rss_gib()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=None, help="exported recon model (default: bundled)")
    p.add_argument("--config", default="configs/recon_tiny.yaml", help="model config for the training rows")
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--ddpm", action="store_true", help="also time DDPM-1000")
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/speed")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": (torch.cuda.get_device_name(0) if device.type == "cuda"
                    else f"{platform.machine()} CPU, {os.cpu_count()} cores"), "rows": []}
    cfg = model_config(args.config)
    for size, batch in ((64, 16), (128, 16)):
        res = train_throughput(cfg, size, [batch], device, args.train_steps, bf16=device.type == "cuda")
        res.update({"what": "train", "config": args.config, "peak_rss_GiB_so_far": peak_rss_gib()})
        print(json.dumps(res), flush=True)
        results["rows"].append(res)
    rec = Reconstructor(args.ckpt, device=str(device))
    timer = NetTimer(rec.model.net)
    plans = [("ddim", 10), ("ddim", 20), ("ddim", 50)] + ([("ddpm", 1000)] if args.ddpm else [])
    for variant in ("singlecoil", "multicoil"):
        results["rows"] += recon_rows(rec, timer, variant, args.slices, plans, args.seed)
    base = {r["variant"]: r["s_per_slice"] for r in results["rows"] if r.get("nfe") == 10}
    for r in results["rows"]:
        if r["what"] == "reconstruct":
            r["time_vs_ddim10"] = r["s_per_slice"] / base[r["variant"]]
    results["peak_rss_GiB"] = peak_rss_gib()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(results, indent=2) + "\n", overwrite=True)
    lines = [f"Speed, {results['date']}, {results['machine']}, torch {results['torch']}, "
             f"{results['threads']} threads; one run, so compare ratios. Peak RSS {results['peak_rss_GiB']:.2f} GiB.",
             "", "| what | setting | images/s or s/slice | ratio | network s/slice | sampler overhead |",
             "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r["what"] == "train":
            lines.append(f"| train step ({r['params_M']:.1f} M params) | batch {r['batch']} at {r['size']}x{r['size']}"
                         f"{', bf16' if r['bf16'] else ', fp32'} | {r['images_per_s']:.1f} img/s | - | - | - |")
        else:
            lines.append(f"| reconstruct {r['variant']} 128x128 | {r['sampler'].upper()}-{r['nfe']} + DC | "
                         f"{r['s_per_slice']:.2f} s | {r['time_vs_ddim10']:.2f}x DDIM-10 | "
                         f"{r['network_s_per_slice']:.2f} | {100 * r['sampler_overhead_fraction']:.1f}% |")
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

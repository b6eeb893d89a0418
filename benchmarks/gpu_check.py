"""CUDA checks in one run: bf16 training throughput, DDIM-50 latency, sampler overhead beyond network calls.

Run on a GPU machine (``python benchmarks/gpu_check.py --out results.json``); ``--quick`` runs a tiny version on
CPU to check the script itself. Weights are random: the timings do not depend on training.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from mridiff.diffusion.loop import reverse_diffusion
from mridiff.diffusion.samplers import DDIMSampler, complex_randn
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.io.atomic import atomic_write_text
from mridiff.models.unet import ConditionalUNet, UNetConfig
from mridiff.physics.consistency import CG, DataConsistency, Hard
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.physics.operators import MultiCoil, SingleCoil
from mridiff.tasks.problem import InverseProblem


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Mean seconds per call after one warm-up call."""
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def model_config(path: str) -> UNetConfig:
    return UNetConfig.from_dict(yaml.safe_load(Path(path).read_text())["model"])


def train_throughput(cfg: UNetConfig, size: int, batches: list[int], device: torch.device, steps: int,
                     bf16: bool) -> dict[str, Any]:
    """Images/s of full training steps (forward, backward, AdamW) at the largest batch that fits."""
    sched = NoiseSchedule(1000)
    for batch in batches:
        net = ConditionalUNet(cfg).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        x0 = complex_randn(torch.empty(batch, size, size, dtype=torch.complex64, device=device))
        cond = complex_randn(x0)

        def step(net: ConditionalUNet = net, opt: torch.optim.Optimizer = opt, x0: torch.Tensor = x0,
                 cond: torch.Tensor = cond, batch: int = batch) -> None:
            t = torch.randint(0, 1000, (batch,), device=device)
            eps = complex_randn(x0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = net(sched.add_noise(x0, eps, t), cond, t)
            loss = torch.view_as_real(pred - eps).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        try:
            per_step = timed(step, steps)
        except torch.cuda.OutOfMemoryError:
            del net, opt
            torch.cuda.empty_cache()
            continue
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        return {"size": size, "batch": batch, "bf16": bf16, "images_per_s": batch / per_step,
                "s_per_step": per_step, "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
                "peak_mem_GiB": peak}
    return {"size": size, "error": "no batch size fitted"}


def sampling_latency(cfg: UNetConfig, size: int, batch: int, steps: int, device: torch.device, bf16: bool,
                     coils: int = 0) -> dict[str, Any]:
    """Seconds per slice for DDIM with data consistency, and the share of time outside network calls."""
    torch.manual_seed(0)
    net = ConditionalUNet(cfg).to(device).eval()
    sched = NoiseSchedule(1000)
    mask = make_mask(MaskSpec("random", 4), (size, size), 0).to(device)
    x = complex_randn(torch.empty(batch, size, size, dtype=torch.complex64, device=device))
    if coils:
        sens = complex_randn(torch.empty(batch, coils, size, size, dtype=torch.complex64, device=device))
        sens = sens / sens.abs().pow(2).sum(1, keepdim=True).sqrt()
        op: SingleCoil | MultiCoil = MultiCoil(mask, sens)
        dc: DataConsistency = CG(iters=5)
    else:
        op = SingleCoil(mask)
        dc = Hard()
    y = op.forward(x)
    cond = op.adjoint(y)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)

    def denoise(x_t: torch.Tensor, c: torch.Tensor | None, tt: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return net(x_t, c, tt)

    def full() -> None:
        problem = InverseProblem(op, y, cond, torch.ones(batch))
        reverse_diffusion(denoise, sched, DDIMSampler(sched, steps), problem, dc, complex_randn(cond))

    def network_only() -> None:
        with torch.no_grad():
            for _ in range(steps):
                denoise(cond, cond, t)

    total = timed(full, 2)
    nets = timed(network_only, 2)
    return {"size": size, "batch": batch, "steps": steps, "coils": coils, "dc": dc.mode, "bf16": bf16,
            "s_per_slice": total / batch, "s_per_batch": total, "network_s_per_batch": nets,
            "sampler_overhead_fraction": max(total - nets, 0.0) / total}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--quick", action="store_true", help="tiny CPU run to test the script")
    p.add_argument("--sampling-only", action="store_true", help="skip the training-throughput runs")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    big = model_config("configs/recon.yaml")
    default = model_config("configs/recon_default.yaml")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "runs": [],
    }
    if args.quick:
        plan = [("train", default, 32, [4], 2, False), ("sample", default, 32, 2, 3, False, 0),
                ("sample", default, 32, 2, 3, False, 4)]
    else:
        plan = [
            ("train", big, 320, [64, 48, 32, 16, 8], 10, True),
            ("train", default, 128, [256, 128, 64], 10, True),
            ("sample", big, 320, 1, 50, True, 0),
            ("sample", big, 320, 8, 50, True, 0),
            ("sample", big, 320, 8, 50, True, 15),
            ("sample", default, 128, 16, 50, True, 8),
            ("sample", default, 128, 16, 50, False, 8),
        ]
    if args.sampling_only:
        plan = [item for item in plan if item[0] == "sample"]
    for item in plan:
        kind, cfg = item[0], item[1]
        name = "recon.yaml" if cfg is big else "recon_default.yaml"
        try:
            if kind == "train":
                res = train_throughput(cfg, item[2], item[3], device, item[4], item[5])
            else:
                res = sampling_latency(cfg, item[2], item[3], item[4], device, item[5], item[6])
        except Exception as exc:  # noqa: BLE001 - keep going: every measurement that works is worth keeping
            res = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        res.update({"what": kind, "model": name})
        print(json.dumps(res), flush=True)
        results["runs"].append(res)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        atomic_write_text(Path(args.out), json.dumps(results, indent=2), overwrite=True)


if __name__ == "__main__":
    main()

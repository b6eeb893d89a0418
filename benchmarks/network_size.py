"""Network sizes for CPU training: parameters, ms per network call at 256x256 and 320x320, training step time.

Usage::

    python benchmarks/network_size.py [--threads 1] [--repeats 5] [--out benchmarks/results/network_size]

Every candidate is timed in the same run, interleaved, so that the ratios between them hold on a noisy machine.
The absolute times are for the machine the script ran on (named in the output).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from mridiff.io.atomic import atomic_write_text
from mridiff.models.unet import ConditionalUNet, UNetConfig

CANDIDATES: dict[str, dict[str, object]] = {
    "tiny-16": {"channels": [16, 32, 64, 64], "attention_levels": [False, False, False, True],
                "num_head_channels": 16, "norm_num_groups": 8},
    "small-24": {"channels": [24, 48, 96, 96], "attention_levels": [False, False, False, True],
                 "num_head_channels": 24, "norm_num_groups": 8},
    "base-32": {"channels": [32, 64, 128, 128], "attention_levels": [False, False, False, True],
                "num_head_channels": 32, "norm_num_groups": 16},
}


def timed(fn: object, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    assert callable(fn)
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--patch", type=int, default=96, help="training patch side")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/network_size"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = {name: ConditionalUNet(UNetConfig.from_dict({**cfg, "num_res_blocks": 1})) for name, cfg in
            CANDIDATES.items()}
    rows = []
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        row: dict[str, object] = {"name": name, "params": params, "channels": CANDIDATES[name]["channels"]}
        with torch.inference_mode():
            for side in (256, 320):
                x = torch.randn(1, side, side, dtype=torch.complex64)
                t = torch.tensor([500])
                row[f"ms_per_call_{side}"] = 1000 * timed(lambda x=x, t=t, net=net: net(x, x, t), args.repeats)
        xb = torch.randn(args.batch, args.patch, args.patch, dtype=torch.complex64)
        tb = torch.randint(0, 1000, (args.batch,))
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step(net: ConditionalUNet = net, xb: torch.Tensor = xb, tb: torch.Tensor = tb,
                 opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad()
            loss = (net(xb, xb, tb) - xb).abs().pow(2).mean()
            loss.backward()
            opt.step()

        row["s_per_train_step"] = timed(step, max(2, args.repeats // 2))
        rows.append(row)
        print(json.dumps(row))
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()} {platform.processor() or ''} CPU",
              "threads": args.threads, "train_batch": args.batch, "train_patch": args.patch, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2), overwrite=True)
    lines = [f"# Network sizes ({result['date']}, {result['machine']}, {args.threads} thread(s))", "",
             "| network | channels | parameters | ms/call 256² | ms/call 320² | "
             f"s/train step ({args.batch}×{args.patch}²) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['channels']} | {int(r['params']) / 1e6:.2f} M | {r['ms_per_call_256']:.0f} "
                     f"| {r['ms_per_call_320']:.0f} | {r['s_per_train_step']:.2f} |")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

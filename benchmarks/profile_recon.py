"""Where the time of a reconstruction goes: network, everything else in the reverse loop, coil maps, I/O, start-up.

For each matrix (128², 256², 320²) and coil setting (single-coil, 8 coils), one slice of the real validation set
(resampled to the matrix, k-space simulated at 30 dB; or a synthetic head if the set is absent) is reconstructed
with a sampling preset (default balanced), K=1. The network time is measured with a timer around every network
call; "loop, outside the network" is the rest of the reverse loop (data consistency, FFTs, CG, sampler
arithmetic); coil maps are timed on their own (ESPIRiT / JSENSE). Start-up is the import time of
``mridiff.inference.reconstruct`` beside ``import torch`` and the model load, measured in fresh processes. Shares,
not absolute times, are the result: the machine is shared and noisy.

    python benchmarks/profile_recon.py [--preset balanced] [--steps 20] [--sizes 128 256 320] [--ckpt MODEL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from skimage.transform import resize

from mridiff.data.simulate import simulate_kspace
from mridiff.inference.options import preset_options
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.physics.coils import estimate_sens
from mridiff.physics.masks import MaskSpec, make_mask

VAL = Path("work_data/cheng256/singlecoil_val")


def test_image(size: int) -> np.ndarray:
    """A real validation slice resampled to ``size`` (or a synthetic ellipse when the set is absent), in [0, 1]."""
    files = sorted(VAL.glob("*.h5"))
    if files:
        with h5py.File(files[len(files) // 2], "r") as fh:
            img = np.asarray(fh["reconstruction_esc"][0], dtype=np.float64)
    else:
        yy, xx = np.mgrid[-1:1:256j, -1:1:256j]
        img = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1).astype(np.float64)
    img = resize(img, (size, size), order=1, anti_aliasing=True)
    return img / img.max()


class NetTimer:
    """Wraps the network: counts calls and their total wall time."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net, self.calls, self.seconds = net, 0, 0.0
        self._forward = net.forward

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = self._forward(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            self.calls += 1
            return out

        net.forward = timed  # type: ignore[method-assign]

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0


def startup() -> dict[str, float]:
    """Seconds to import torch, to import mridiff's inference API, and to load the bundled model (fresh processes)."""
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - start

    return {"import_torch_s": run("import torch"),
            "import_mridiff_inference_s": run("import mridiff.inference.reconstruct"),
            "load_model_s": run("from mridiff.inference.reconstruct import Reconstructor; Reconstructor(device='cpu')")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=None)
    p.add_argument("--preset", default="balanced", help="sampling preset (fast, balanced, best)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 320])
    p.add_argument("--coils", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case; the median is reported")
    p.add_argument("--out", default="benchmarks/results/profile_recon")
    args = p.parse_args()
    rec = Reconstructor(args.ckpt, device="cpu")
    opts = preset_options(args.preset, steps=args.steps)
    setting = f"{args.preset} preset ({opts.sampler.value}-{opts.make_sampler(rec.model.schedule).num_steps}, " \
              f"{opts.dc.value} DC, {opts.cg_iters} CG iterations for SENSE)"
    timer = NetTimer(rec.model.net)
    rows = []
    for size in args.sizes:
        img = test_image(size)
        for coils in args.coils:
            sim = simulate_kspace(img, coils, np.random.default_rng(0), snr_db=30.0)
            mask = make_mask(MaskSpec("random", 4), (size, size), 0)
            multicoil = coils > 1
            kspace = sim.kspace[None]
            sens_s, sens_first_s = 0.0, 0.0
            sens = None
            if multicoil:  # the first slice pays sigpy's and numpy's one-off set-up; a volume pays it once
                sens_times = []
                for _ in range(1 + args.repeats):
                    start = time.perf_counter()
                    sens = estimate_sens(torch.from_numpy(sim.kspace), mask, "espirit")[None]
                    sens_times.append(time.perf_counter() - start)
                sens_first_s, sens_s = sens_times[0], float(np.median(sens_times[1:]))
            rec.reconstruct(kspace, mask, replace(opts, steps=2), multicoil=multicoil, sens=sens)  # warm-up
            runs = []
            for _ in range(args.repeats):
                timer.reset()
                start = time.perf_counter()
                rec.reconstruct(kspace, mask, opts, multicoil=multicoil, sens=sens)
                runs.append((time.perf_counter() - start, timer.seconds, timer.calls))
            total, net_s, calls = sorted(runs)[len(runs) // 2]  # the median run
            row = {"matrix": size, "coils": coils, "setting": setting, "network_calls": calls,
                   "total_loop_s": total, "network_s": net_s, "outside_network_s": total - net_s,
                   "coil_maps_s": sens_s, "coil_maps_first_slice_s": sens_first_s,
                   "network_share_of_loop_and_maps": net_s / (total + sens_s),
                   "outside_network_share": (total - net_s + sens_s) / (total + sens_s)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    start_up = startup()
    files = sorted(Path(str(VAL).replace("singlecoil", "multicoil")).glob("*.h5"))
    if files:  # I/O: reading one 8-coil slice of a fastMRI-layout file
        from mridiff.data.fastmri_h5 import open_scan, read_slice

        start = time.perf_counter()
        read_slice(open_scan(files[0]), 0)
        start_up["read_8coil_slice_s"] = time.perf_counter() - start
    print(json.dumps(start_up), flush=True)
    machine = (f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}")
    header = (f"Where the time goes, {time.strftime('%Y-%m-%d')}, {machine}; {setting}, K=1, one "
              f"slice, model {rec.model.path.name}, median of {args.repeats} runs after a warm-up (coil maps: the "
              f"first slice of a process also pays one-off set-up, in the last column). Start-up (fresh "
              f"processes): import torch "
              f"{start_up['import_torch_s']:.1f} s, import mridiff.inference.reconstruct "
              f"{start_up['import_mridiff_inference_s']:.1f} s, + load model {start_up['load_model_s']:.1f} s.")
    lines = [header, "", "| matrix | coils | network (s) | loop outside network (s) | coil maps (s) | "
             "outside-network share | coil maps, first slice (s) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['matrix']}² | {r['coils']} | {r['network_s']:.2f} | {r['outside_network_s']:.2f} | "
                     f"{r['coil_maps_s']:.2f} | {100 * r['outside_network_share']:.0f} % | "
                     f"{r['coil_maps_first_slice_s']:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"),
                      json.dumps({"header": header, "rows": rows, "startup": start_up}, indent=2), overwrite=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

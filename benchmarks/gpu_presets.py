"""GPU check of the presets (issue 15): latency per slice at 320², a batched 30-slice volume, memory, bf16 quality.

For each preset (fast, balanced, best) it times one 320² slice, single-coil and 15-coil (coil maps given, timed
apart: sigpy's ESPIRiT runs on the CPU here), as the median of ``--repeats`` runs after a warm-up; then a 30-slice
320² volume in one batch with the balanced preset; then ``--quality-slices`` slices with fp32 and with bf16
network arithmetic, scored against the truth with fastMRI's PSNR/SSIM. Peak GPU memory is recorded per case.
Images are real validation slices (``--images``: fastMRI-layout single-coil files; ``reconstruction_esc``),
resized to 320², with simulated k-space (smooth phase, coil maps, 30 dB noise) and fastMRI's 4x random mask.

    python benchmarks/gpu_presets.py --ckpt mridiff/weights/recon.safetensors \\
        --images work_data/cheng256/singlecoil_val --out benchmarks/results/gpu_presets
    python benchmarks/gpu_presets.py --quick --out /tmp/gpu_presets     # tiny CPU run that tests the script

The goals it reports against: balanced < 0.3 s per 320² slice, the 30-slice volume < 5 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from skimage.transform import resize

from mridiff.data.simulate import simulate_kspace
from mridiff.inference.options import SamplingOptions, preset_options
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.metrics import psnr, ssim
from mridiff.physics.coils import estimate_sens
from mridiff.physics.masks import MaskSpec, make_mask

LABEL = "real clinical images (Cheng validation split), simulated k-space"
GOALS = {"balanced_s_per_slice": 0.3, "volume_30_s": 5.0}


def load_images(folder: str | None, count: int, size: int) -> tuple[np.ndarray, str]:
    """``count`` magnitude images resized to ``size``² in [0, 1], and what they are."""
    files = sorted(Path(folder).glob("*.h5")) if folder else []
    images = []
    for path in files[:: max(1, len(files) // count)][:count]:
        with h5py.File(path, "r") as fh:
            esc = np.asarray(fh["reconstruction_esc"], dtype=np.float64)
        img = resize(esc[len(esc) // 2], (size, size), order=1, anti_aliasing=True)
        images.append(img / img.max())
    if images:
        return np.stack(images), LABEL
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]  # no data given: a phantom keeps the timing valid
    phantom = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1) * (0.6 + 0.4 * ((xx / 0.3) ** 2 + (yy / 0.5) ** 2 < 1))
    return np.repeat(phantom[None].astype(np.float64), count, axis=0), "synthetic ellipse phantom"


def simulate(images: np.ndarray, coils: int) -> tuple[np.ndarray, np.ndarray]:
    """Fully sampled k-space ``(S, [C,] H, W)`` of the images, and the complex truth."""
    sims = [simulate_kspace(img, coils, np.random.default_rng(i), snr_db=30.0) for i, img in enumerate(images)]
    return np.stack([s.kspace for s in sims]), np.stack([s.image for s in sims])


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_memory(device: torch.device) -> float | None:
    """Peak GPU memory since the last reset, GiB (``None`` on the CPU); resets the counter."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All measurements, as one JSON-able dict."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rec = Reconstructor(args.ckpt, device=str(device))
    size = args.size
    mask = make_mask(MaskSpec("random", 4), (size, size), 0)
    images, label = load_images(args.images, max(args.volume, args.quality_slices), size)
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name(device)
                           if device.type == "cuda" else f"{platform.machine()} CPU", "torch": torch.__version__,
                           "model": Path(rec.model.path).name, "images": label, "size": size, "mask": "random 4x",
                           "goals": GOALS, "latency": [], "volume": None, "precision": []}
    for coils in (1, args.coils):
        kspace, _ = simulate(images[:1], coils)
        sens = None
        maps_s = 0.0
        if coils > 1:
            one = torch.from_numpy(kspace[0])
            maps_s = median_seconds(lambda one=one: estimate_sens(one, mask, "espirit"), args.repeats)
            sens = estimate_sens(one, mask, "espirit")[None]
        for preset in ("fast", "balanced", "best"):
            opts = preset_options(preset, batch_size=1)
            seconds = median_seconds(lambda k=kspace, o=opts, s=sens, m=coils > 1: rec.reconstruct(
                k, mask, o, multicoil=m, sens=s), args.repeats)
            row = {"preset": preset, "coils": coils, "s_per_slice": seconds, "coil_maps_s": maps_s,
                   "peak_mem_GiB": peak_memory(device)}
            out["latency"].append(row)
            print(json.dumps(row), flush=True)
    kspace, _ = simulate(images[: args.volume], 1)
    opts = preset_options("balanced", batch_size=args.volume)
    seconds = median_seconds(lambda: rec.reconstruct(kspace, mask, opts, multicoil=False), max(1, args.repeats // 2))
    out["volume"] = {"slices": args.volume, "preset": "balanced", "batch_size": args.volume, "s_total": seconds,
                     "peak_mem_GiB": peak_memory(device)}
    print(json.dumps(out["volume"]), flush=True)
    kspace, truth = simulate(images[: args.quality_slices], 1)
    gt = np.abs(truth).astype(np.float32)
    for precision in ("fp32", "bf16"):
        opts = preset_options("balanced", batch_size=args.quality_slices, precision=precision)
        start = time.perf_counter()
        pred = rec.reconstruct(kspace, mask, opts, multicoil=False).mean
        sync()
        row = {"precision": precision, "slices": args.quality_slices, "psnr": psnr(gt, pred), "ssim": ssim(gt, pred),
               "s_total": time.perf_counter() - start}
        out["precision"].append(row)
        print(json.dumps(row), flush=True)
    return out


def table(res: dict[str, Any]) -> str:
    """The results as Markdown."""
    lines = [f"GPU check of the presets, {res['date']}, {res['device']}, torch {res['torch']}, model {res['model']}; "
             f"{res['size']}² {res['mask']}, {res['images']}.", "",
             "| preset | coils | s per slice | coil maps (s, CPU) | peak GiB |", "|---|---|---|---|---|"]
    for r in res["latency"]:
        mem = "-" if r["peak_mem_GiB"] is None else f"{r['peak_mem_GiB']:.2f}"
        lines.append(f"| {r['preset']} | {r['coils']} | {r['s_per_slice']:.3f} | {r['coil_maps_s']:.2f} | {mem} |")
    v = res["volume"]
    mem = "-" if v["peak_mem_GiB"] is None else f"{v['peak_mem_GiB']:.2f} GiB peak"
    lines += ["", f"{v['slices']}-slice volume, balanced, one batch: {v['s_total']:.2f} s ({mem}).", "",
              "| network arithmetic | PSNR | SSIM | s |", "|---|---|---|---|"]
    for r in res["precision"]:
        lines.append(f"| {r['precision']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['s_total']:.2f} |")
    balanced = [r["s_per_slice"] for r in res["latency"] if r["preset"] == "balanced" and r["coils"] == 1][0]
    lines += ["", f"Goals: balanced < {GOALS['balanced_s_per_slice']} s per slice: {balanced:.3f} s "
              f"({'met' if balanced < GOALS['balanced_s_per_slice'] else 'missed'}); 30-slice volume < "
              f"{GOALS['volume_30_s']} s: {v['s_total']:.2f} s "
              f"({'met' if v['s_total'] < GOALS['volume_30_s'] and v['slices'] >= 30 else 'not shown'})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=None, help="exported reconstruction model (default: the bundled one)")
    p.add_argument("--images", default=None, help="folder of fastMRI single-coil .h5 files (reconstruction_esc)")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--coils", type=int, default=15)
    p.add_argument("--volume", type=int, default=30, help="slices of the batched volume")
    p.add_argument("--quality-slices", type=int, default=8, help="slices for the bf16-vs-fp32 comparison")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes, to test the script on a CPU")
    p.add_argument("--out", default="benchmarks/results/gpu_presets", help="output stem (.json and .md)")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.coils, args.volume, args.quality_slices, args.repeats = 32, 4, 3, 2, 1
    SamplingOptions()  # imports settle before any timing
    res = run(args)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(res, indent=2), overwrite=True)
    atomic_write_text(stem.with_suffix(".md"), table(res), overwrite=True)
    print(table(res))
    return res


if __name__ == "__main__":
    main()

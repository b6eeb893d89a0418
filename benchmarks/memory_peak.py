"""Peak resident memory of ``mridiff reconstruct`` on a large multi-coil volume (issue 6, resources).

Writes a synthetic fastMRI-layout file (default 30 slices x 15 coils x 640 x 368, the size of a large fastMRI knee
volume; the file is written one slice at a time), then runs ``python -m mridiff.cli reconstruct FILE --steps 2`` in a
child process and reads that child's peak RSS from ``wait4``. A second child that only imports mridiff and loads
the model gives the baseline. Memory does not depend on ``--steps`` (the reverse loop keeps one state per image),
so two steps measure the same peak as fifty.

Slices stream through in batches of ``--batch-size``: the peak should not grow with the number of slices beyond
the output arrays (4 float32 images per slice). Pass several ``--slices`` values to check that.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/memory_peak.py                       # the full 30-slice volume
    OMP_NUM_THREADS=1 python benchmarks/memory_peak.py --slices 2 6 --sens-method lowres
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mridiff.data.ismrmrd import build_header  # noqa: E402
from mridiff.io.atomic import atomic_write_text  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "memory_peak.json"


def write_volume(path: Path, slices: int, coils: int, height: int, width: int, seed: int = 0) -> int:
    """Write a fully sampled multi-coil volume slice by slice (never whole in memory); return its k-space bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    angles = np.linspace(0, 2 * np.pi, coils, endpoint=False)
    maps = np.stack([np.exp(-((x - 1.2 * np.cos(a)) ** 2 + (y - 1.2 * np.sin(a)) ** 2)) * np.exp(1j * a)
                     for a in angles]).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    with h5py.File(path, "w") as hf:
        ks = hf.create_dataset("kspace", shape=(slices, coils, height, width), dtype=np.complex64,
                               chunks=(1, coils, height, width))
        tgt = hf.create_dataset("reconstruction_rss", shape=(slices, height, width), dtype=np.float32)
        for s in range(slices):
            r2 = (x / (0.7 + 0.01 * s)) ** 2 + (y / 0.85) ** 2
            img = np.where(r2 < 1, 1.0 + 0.3 * np.cos(9 * x + s) * np.sin(7 * y), 0.0).astype(np.complex64)
            coil_imgs = maps * img
            k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_imgs, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
            k += (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)).astype(np.complex64) * 1e-4
            ks[s] = k.astype(np.complex64)
            tgt[s] = np.sqrt((np.abs(coil_imgs) ** 2).sum(0)).astype(np.float32)
        hf.create_dataset("ismrmrd_header", data=np.bytes_(build_header((height, width), (height, width),
                                                                        (440.0, 253.0, 3.0))))
        hf.attrs["acquisition"] = "SIM_BENCH"
    return slices * coils * height * width * np.dtype(np.complex64).itemsize


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run ``cmd``; return (peak RSS in MiB from wait4, wall seconds, exit code, stderr tail)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return usage.ru_maxrss / 1024.0, time.perf_counter() - start, proc.returncode, tail


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save the peak RSS for each requested slice count."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slices", type=int, nargs="+", default=[30], help="slice counts to measure (default 30)")
    p.add_argument("--coils", type=int, default=15)
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=368)
    p.add_argument("--batch-size", type=int, default=2, help="slices per batch (reconstruct --batch-size)")
    p.add_argument("--sens-method", choices=["espirit", "lowres"], default="espirit")
    p.add_argument("--ckpt", default=None, help="model (default: the bundled recon model)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument("--append", action="store_true", help="add to the runs already in --out")
    args = p.parse_args(argv)

    threads = os.environ.get("OMP_NUM_THREADS", "1")
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": str(ROOT)}
    ckpt_args = ["--ckpt", args.ckpt] if args.ckpt else []
    load_only = ("from mridiff.inference.reconstruct import Reconstructor; import sys; "
                 f"Reconstructor({args.ckpt!r}, device='cpu')")
    baseline, _, code, tail = peak_rss_mb([sys.executable, "-c", load_only], env)
    if code != 0:
        print(tail, file=sys.stderr)
        return 1
    print(f"baseline (import + load model): {baseline:.0f} MiB")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mridiff_mem_") as tmp:
        for n in args.slices:
            scan = Path(tmp) / f"vol{n}.h5"
            kspace_bytes = write_volume(scan, n, args.coils, args.height, args.width)
            cmd = [sys.executable, "-m", "mridiff.cli", "reconstruct", str(scan), *ckpt_args, "--device", "cpu",
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--sens-method",
                   args.sens_method, "--out", str(Path(tmp) / f"out{n}"), "--no-progress"]
            peak, wall, code, tail = peak_rss_mb(cmd, env)
            scan.unlink()
            if code != 0:
                print(tail, file=sys.stderr)
                return 1
            run = {"slices": n, "coils": args.coils, "matrix": [args.height, args.width],
                   "batch_size": args.batch_size, "sens_method": args.sens_method, "steps": args.steps,
                   "kspace_volume_mib": round(kspace_bytes / 2**20, 1), "peak_rss_mib": round(peak, 1),
                   "peak_minus_baseline_mib": round(peak - baseline, 1), "wall_s": round(wall, 1)}
            runs.append(run)
            print(f"{n} slices x {args.coils} coils x {args.height}x{args.width} ({run['kspace_volume_mib']:.0f} MiB "
                  f"k-space), {args.sens_method}, batch {args.batch_size}: peak RSS {peak:.0f} MiB "
                  f"(+{peak - baseline:.0f} over baseline), {wall:.0f} s", flush=True)
    model = args.ckpt or "bundled recon model"
    new = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)",
           "device": "cpu", "omp_num_threads": threads, "model": model, "baseline_rss_mib": round(baseline, 1),
           "runs": runs}
    results: dict[str, Any] = {"measurements": []}
    if args.append and args.out.is_file():
        results = json.loads(args.out.read_text())
    results["measurements"].append(new)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n", overwrite=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose recipes on validation: exported recon models on the real-image validation split, T1 and a T2-like remap.

Only the validation split of ``data_prep.cheng`` (highest-numbered 10 % of glioma/ and pituitary/) is read;
the test folder (meningioma/) never is. Single-coil, 1D random masks with fastMRI centre fractions, DDIM + hard
DC, the mean of K independent samples (``--samples 1 4 8``), the same slices, masks and seeds for every model.

* ``t1``: the stored k-space (real clinical images, simulated k-space, 30 dB).
* ``t2like``: the stored target remapped by :func:`mridiff.data.augmentation.t2_like` (a fixed curve never drawn
  in training), with k-space simulated afresh at 30 dB (seeded by the file's slice number).

    python benchmarks/real_val.py runs/a/model.safetensors runs/b/model.safetensors --slices 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from skimage.transform import resize

from mridiff.data.augmentation import t2_like
from mridiff.data.simulate import ifft2c_np, simulate_kspace
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import atomic_write_text
from mridiff.metrics import volume_metrics
from mridiff.physics.masks import MaskSpec, make_mask

VAL_DIR = Path("work_data/cheng256/singlecoil_val")


def load_slices(n: int, contrast: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evenly spaced validation slices: k-space (n, H, W) and magnitude targets (n, H, W).

    With ``size`` (e.g. 320) the target is resampled to ``size x size`` (a finer matrix over the same field of
    view) and k-space is simulated afresh, to check a matrix the model was not trained at.
    """
    files = sorted(VAL_DIR.glob("*.h5"))
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]
    ks, gts = [], []
    for path in picks:
        with h5py.File(path, "r") as fh:
            k = np.asarray(fh["kspace"][0])
            target = np.asarray(fh["reconstruction_esc"][0])
            number = int(np.asarray(fh.attrs["source_slice_index"])[0])
        if contrast == "t2like" or size not in (None, target.shape[-1]):
            img = target / float(target.max())
            if size not in (None, target.shape[-1]):
                img = resize(img, (size, size), order=1, anti_aliasing=True)
            img = t2_like(img) if contrast == "t2like" else img
            k = simulate_kspace(img, 1, np.random.default_rng([7, number]), snr_db=30.0).kspace
            target = np.abs(ifft2c_np(k.astype(np.complex128))).astype(np.float32)
        ks.append(k)
        gts.append(target)
    return np.stack(ks), np.stack(gts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--slices", type=int, default=16)
    p.add_argument("--steps", type=int, nargs="+", default=[20], help="one or more step counts")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "dpmpp2m"])
    p.add_argument("--dc", nargs="+", default=["hard"], choices=["hard", "soft", "cg"], help="one or more DC kinds")
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    p.add_argument("--contrasts", nargs="+", default=["t1", "t2like"])
    p.add_argument("--size", type=int, default=None, help="resample to this matrix (e.g. 320) and re-simulate")
    p.add_argument("--samples", type=int, nargs="+", default=[1],
                   help="K values: the mean of the first K of max(K) independent samples (seeds 0, 1, ...) each")
    p.add_argument("--out", default="benchmarks/results/real_val")
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    for contrast in args.contrasts:
        kspace, gt = load_slices(args.slices, contrast, args.size)
        for acc in args.accelerations:
            mask = make_mask(MaskSpec("random", acc), kspace.shape[-2:], 1234)
            zf = None
            for model in args.models:
                meta = json.loads(Path(model).with_suffix(".json").read_text())
                rec = Reconstructor(model, device="cpu")
                for steps in args.steps:
                    for dc in args.dc:
                        means = []
                        for seed in range(max(args.samples)):  # sample k of slice i depends on (seed, i, k) only
                            res = rec.reconstruct(kspace, mask, multicoil=False, samples=1, seed=seed, batch_size=4,
                                                  sampler=args.sampler, steps=steps, dc=dc)
                            means.append(res.mean)
                            if zf is None:
                                zf = volume_metrics(gt, res.zero_filled)
                                rows.append({"contrast": contrast, "matrix": int(gt.shape[-1]), "acceleration": acc,
                                             "model": "zero-filled", **zf})
                        for k in sorted(set(args.samples)):
                            rows.append({"contrast": contrast, "matrix": int(gt.shape[-1]), "acceleration": acc,
                                         "model": model, "steps": steps, "dc": dc, "K": k,
                                         "step": meta.get("training", {}).get("global_step"),
                                         **volume_metrics(gt, np.mean(means[:k], axis=0))})
                            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    header = (f"Validation (real clinical images, simulated k-space; cheng val split, {args.slices} slices), "
              f"{time.strftime('%Y-%m-%d')}, {machine}; single-coil, 1D random masks, {args.sampler.upper()} + data "
              "consistency, mean of K independent samples")
    lines = [header, "", "| contrast | matrix | accel | model | step | sampler steps | DC | K | PSNR | SSIM |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['contrast']} | {r['matrix']} | {r['acceleration']}x | {r['model']} | {r.get('step', '')} | "
                     f"{r.get('steps', '')} | {r.get('dc', '')} | {r.get('K', '')} | {r['PSNR']:.2f} | "
                     f"{r['SSIM']:.4f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out + ".json"), json.dumps({"header": header, "rows": rows}, indent=2), overwrite=True)
    atomic_write_text(Path(args.out + ".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

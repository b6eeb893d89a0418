"""Super-resolution quality on the real test images (or a volume): bicubic, zero-padded k-space (sinc), mridiff.

The high-resolution truth is the complex image of the test file's (simulated, single-coil, 30 dB) k-space; the low
resolution is its central k-space block (``KspaceCrop``), i.e. the ``--lr-model kspace`` physics, and optionally
block means (``--lr-models kspace image``). Every method lies on the same grid (see ``mridiff.inference.superres``).
Metrics follow docs/evaluation.md (mridiff.metrics: PSNR/NMSE per volume, SSIM per slice with the volume max),
on a subset of slices; per-slice mean and std are given too, since there is one test volume.

    python benchmarks/sr_quality.py                 # 24 real test slices (data_prep.cheng), x2 and x4
    python benchmarks/sr_quality.py --data work_data/default/singlecoil_test/colin27.h5 --slices 6
    python benchmarks/sr_quality.py --slices 20 --steps 50 --samples 4 --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import by_number, evenly_spaced, tumour_box  # noqa: E402

from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.inference.model import training_summary
from mridiff.inference.superres import SuperResolver, bicubic_upsample, simulate_lowres, sinc_upsample
from mridiff.io.atomic import atomic_write_text
from mridiff.io.figures import panel_png
from mridiff.io.outputs import write_json
from mridiff.metrics import box_metrics, psnr, ssim, uncertainty_calibration, volume_metrics
from mridiff.physics.fft import ifft2c

DEFAULT_DATA = "work_data/cheng256/singlecoil_test"  # real test images (data_prep.cheng); or a volume file


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def load_truth(path: Path, n_slices: int) -> tuple[list[str], torch.Tensor, list[list[int] | None]]:
    """Slice labels, their complex HR images (S, H, W) and tumour boxes (or ``None``).

    A file (one volume, e.g. Colin27): ``n_slices`` evenly spaced over the middle half. A directory (the real
    test set of ``data_prep.cheng``, one slice per file): ``n_slices`` files spread evenly over the slice numbers.
    """
    if path.is_dir():
        files = evenly_spaced(sorted(path.glob("*.h5"), key=by_number), n_slices)
        images = [ifft2c(torch.from_numpy(read_slice(open_scan(f), 0).kspace)) for f in files]
        return [f.stem for f in files], torch.stack(images), [tumour_box(f) for f in files]
    info = open_scan(path)
    picks = np.unique(np.linspace(info.num_slices // 4, 3 * info.num_slices // 4, n_slices).round().astype(int))
    images = [ifft2c(torch.from_numpy(read_slice(info, int(i)).kspace)) for i in picks]
    return [str(int(i)) for i in picks], torch.stack(images), [None] * len(picks)


def per_slice(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Mean and std over slices of per-slice PSNR and SSIM (data range: the slice max)."""
    p = [psnr(g, q) for g, q in zip(gt, pred, strict=True)]
    s = [ssim(g[None], q[None]) for g, q in zip(gt, pred, strict=True)]
    return {"PSNR_mean": float(np.mean(p)), "PSNR_std": float(np.std(p)), "SSIM_mean": float(np.mean(s)),
            "SSIM_std": float(np.std(s))}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run every method at every scale; returns the results dict (also holds the figure rows)."""
    picks, hr, boxes = load_truth(Path(args.data), args.slices)
    gt = hr.abs().numpy()
    sr = SuperResolver(args.ckpt, device=args.device)
    rows: list[dict[str, Any]] = []
    figure: list[list[np.ndarray]] = []
    mid = len(picks) // 2
    for lr_model in args.lr_models:
        for scale in (2, 4):
            lr = simulate_lowres(hr, scale, lr_model)
            preds: dict[str, np.ndarray | None] = {
                "bicubic": bicubic_upsample(lr.abs().numpy(), scale, lr_model),
                "sinc": sinc_upsample(lr, scale, lr_model).abs().numpy(),
            }
            extra: dict[str, Any] = {}
            if scale in sr.trained_scales:
                res = sr.superresolve(lr, scale, lr_model=lr_model, steps=args.steps, samples=args.samples,
                                      seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress)
                extra = {"seconds_per_slice": res.seconds_per_slice, "nfe": res.nfe}
                if args.samples > 1:
                    extra["uncertainty"] = uncertainty_calibration(gt, res.mean, res.std)
                preds["mridiff"] = res.mean
            else:
                preds["mridiff"] = None
                extra = {"note": f"no x{scale} model bundled (trained scales: {sr.trained_scales})"}
            for method, pred in preds.items():
                row: dict[str, Any] = {"lr_model": lr_model, "scale": scale, "method": method}
                if pred is None:
                    row.update(extra)
                else:
                    row.update(volume_metrics(gt, pred))
                    row.update(per_slice(gt, pred))
                    if any(b is not None for b in boxes):
                        row.update(box_metrics(gt, pred, boxes))
                    if method == "mridiff":
                        row.update(extra)
                rows.append(row)
            if lr_model == "kspace":
                ours = preds["mridiff"]
                ours_mid = ours[mid] if ours is not None else np.zeros_like(gt[mid])  # blank: no model
                err = np.abs(ours_mid - gt[mid]) * 4 if ours is not None else ours_mid
                bicubic, sinc = preds["bicubic"], preds["sinc"]
                assert bicubic is not None and sinc is not None  # the baselines always run
                figure.append([gt[mid], bicubic[mid], sinc[mid], ours_mid, err])
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "data": {"file": args.data, "slices": picks, "real": Path(args.data).is_dir(),
                     "truth": "complex image of simulated single-coil k-space (30 dB), magnitude for metrics"},
            "settings": {"steps": args.steps, "sampler": "ddim", "samples": args.samples, "seed": args.seed,
                         "ckpt": str(sr.model.path), "sha256": sr.model.meta.get("sha256"),
                         "data_consistency": "hard (measured k-space centre / block means kept exactly)"},
            "caveat": training_summary(sr.model.meta), "results": rows, "_figure": figure}


def markdown(res: dict[str, Any]) -> str:
    """The results table as Markdown."""
    lines = [f"# SR quality ({res['date']})", "",
             f"Data: `{res['data']['file']}` slices {res['data']['slices']} ({res['data']['truth']}"
             + (("; **real clinical images, simulated k-space**, "
                 + ("validation split, method development)." if "_val" in str(res["data"]["file"])
                    else "meningioma/ test folder, never trained on)."))
                if res["data"].get("real") else "; one volume)."),
             f"Machine: {res['machine']['platform']}, {res['machine']['processor']}, "
             f"torch threads {res['machine']['torch_threads']}, CUDA {res['machine']['cuda']}.",
             f"mridiff: DDIM {res['settings']['steps']} steps, K = {res['settings']['samples']}, "
             "hard data consistency.",
             "", "| LR model | scale | method | PSNR (vol) | SSIM | NMSE | PSNR/slice (mean ± sd) | box PSNR "
             "| box SSIM | s/slice |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["results"]:
        if "PSNR" not in r:
            lines.append(f"| {r['lr_model']} | x{r['scale']} | {r['method']} | n/a | n/a | n/a | {r['note']} | | | |")
            continue
        secs = f"{r['seconds_per_slice']:.2f}" if "seconds_per_slice" in r else ""
        box = f"{r['box_PSNR']:.2f} | {r['box_SSIM']:.4f}" if "box_PSNR" in r else "- | -"
        lines.append(f"| {r['lr_model']} | x{r['scale']} | {r['method']} | {r['PSNR']:.2f} | {r['SSIM']:.4f} | "
                     f"{r['NMSE']:.4f} | {r['PSNR_mean']:.2f} ± {r['PSNR_std']:.2f} | {box} | {secs} |")
    if res.get("caveat"):
        lines += ["", f"Note: {res['caveat']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--ckpt", help="SR model (default: the bundled x2 model)")
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--lr-models", nargs="+", choices=["kspace", "image"], default=["kspace"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    res = evaluate(args)
    figure = res.pop("_figure")
    out = Path(args.out)
    write_json(out / "sr_quality.json", res)
    text = markdown(res)
    atomic_write_text((out / "sr_quality.md"), text, overwrite=True)
    vmax = float(np.percentile(figure[0][0], 99.5))
    labels = [f"x{2 * 2**i}" + ("" if row[3].any() else " (no model)") for i, row in enumerate(figure)]
    panel_png(figure, ["HR truth", "bicubic", "sinc", "mridiff", "|err| x4"], out / "sr_quality.png",
              vmaxes=[vmax, vmax, vmax, vmax, vmax], overwrite=True, row_labels=labels)
    print(text)


if __name__ == "__main__":
    main()

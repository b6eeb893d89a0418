"""Calibrated uncertainty: conformal quantiles from validation scans, coverage measured on the test scans.

Protocol: calibrate a recon model on the validation split of the real-image set (``data_prep.cheng``:
glioma/pituitary, never the test folder) in every mode (single/multi-coil, 4x/8x, hard DC, K samples), then, on
the test folder (``meningioma/``, slices spread over the numbers) and on Colin27, measure the observed coverage of
the calibrated intervals at 50-99 % nominal, Spearman(std, |error|), and the same inside the tumour boxes and in the
background. Writes the calibrated model copy, a table, and a reliability diagram per data set.

    python benchmarks/calibration.py --model runs/recon_real/model.safetensors --cal-slices 16 --test-slices 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import by_number, evenly_spaced, tumour_box  # noqa: E402

from mridiff.data.fastmri_h5 import open_scan, read_slice  # noqa: E402
from mridiff.inference.calibration import (  # noqa: E402
    DEFAULT_LEVELS,
    Mode,
    calibrate_model,
    coverage,
    foreground,
    interval,
    lookup,
    matrix_of,
    select_entry,
    smooth_std,
)
from mridiff.inference.options import preset_options  # noqa: E402
from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.io.atomic import atomic_write_text  # noqa: E402
from mridiff.io.figures import reliability_png  # noqa: E402
from mridiff.metrics import grow_box  # noqa: E402
from mridiff.physics.masks import MaskSpec, make_mask  # noqa: E402

Item = tuple[Path, int]  # (file, slice index)


def load(items: list[Item]) -> tuple[np.ndarray, np.ndarray, list[list[int] | None]]:
    """k-space, targets and tumour boxes of the given slices."""
    ks, gts, boxes = [], [], []
    for f, index in items:
        d = read_slice(open_scan(f), index)
        ks.append(d.kspace)
        gts.append(np.asarray(d.target))
        boxes.append(tumour_box(f))
    return np.stack(ks), np.stack(gts), boxes


def middle_slices(files: list[Path]) -> list[Item]:
    """One item per file: its middle slice (the real-image files hold one slice each)."""
    return [(f, open_scan(f).num_slices // 2) for f in files]


def volume_slices(path: Path, n: int) -> list[Item]:
    """``n`` slices spread over the central 40 % of a volume (Colin27, as benchmarks/quality.py takes them)."""
    count = open_scan(path).num_slices
    return [(path, int(i)) for i in np.linspace(0.3 * count, 0.7 * count, n).astype(int)]


def region_masks(shape: tuple[int, ...], boxes: list[list[int] | None], fg: np.ndarray) -> dict[str, np.ndarray]:
    """Every pixel, the object pixels, the object pixels inside the tumour boxes, and the background."""
    inside = np.zeros(shape, dtype=bool)
    for i, box in enumerate(boxes):
        if box is not None:
            r0, c0, r1, c1 = grow_box(box, 16, shape[-2:])
            inside[i, r0:r1, c0:c1] = True
    return {"whole image": np.ones(shape, dtype=bool), "object": fg, "tumour box": fg & inside, "background": ~fg}


def evaluate(rec: Reconstructor, cal: dict[str, Any], mode: Mode, items: list[Item], seed: int) -> dict[str, Any]:
    """Coverage per level and Spearman per region for one mode on one data set (each slice its own mask)."""
    files = [f for f, _ in items]
    kspace, truth, boxes = load(items)
    masks = np.stack([make_mask(MaskSpec("random", mode.acceleration), kspace.shape[-2:], 1000 + seed + i).numpy()
                      for i in range(len(files))])
    opts = preset_options("balanced", sampler=cal["sampler"], steps=cal["steps"], dc=mode.dc, samples=mode.samples,
                          seed=seed + 1)
    res = rec.reconstruct(kspace, masks, opts, multicoil=mode.multicoil)
    smoothing = float(cal.get("std_smoothing_px", 0.0))
    table = cal["table"]
    # the entry reconstruct itself would use: nearest matrix, measured acceleration
    acceleration = float(masks.size / masks.sum())
    entry = select_entry(table, mode.multicoil, acceleration, mode.dc, mode.samples, matrix_of(kspace.shape))
    if entry is None:
        raise SystemExit(f"no calibration entry for {mode.key} (measured acceleration {acceleration:.2f})")
    regions = region_masks(truth.shape, boxes, foreground(res.mean))
    out: dict[str, Any] = {"mode": mode.key, "entry": entry.key, "matrix": matrix_of(kspace.shape),
                           "slices": len(files), "coverage": {}, "spearman": {}}
    for level in DEFAULT_LEVELS:
        q = lookup(table, entry.key, level)
        if q is None:
            continue
        iv = interval(res.mean, res.std, q, level, smoothing)
        out["coverage"][f"{level:g}"] = {name: coverage(truth, iv.lower, iv.upper, m) for name, m in regions.items()
                                         if m.any()}
    err = np.abs(truth - res.mean)
    std = smooth_std(res.std, smoothing)  # the map the intervals are built on
    # The ceiling of any map as smooth as the std map: the true local RMS error at the same smoothing scale (it
    # even sees the pixel's own error). Where it is low, the errors are pixel-scale noise that no smooth
    # uncertainty map can rank.
    oracle = np.sqrt(smooth_std(err**2, smoothing))
    out["spearman_ceiling"] = {}
    for name, m in regions.items():
        if m.any() and res.std[m].std() > 0:
            out["spearman"][name] = float(spearmanr(std[m], err[m]).statistic)
            out["spearman_ceiling"][name] = float(spearmanr(oracle[m], err[m]).statistic)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="recon model (default: the bundled one)")
    p.add_argument("--data", default="work_data/cheng256", help="data_prep.cheng output")
    p.add_argument("--extra-cal-data", nargs="*", default=[],
                   help="more data_prep.cheng outputs (e.g. prepared at --size 128) whose validation split calibrates "
                        "entries for their matrix size too")
    p.add_argument("--colin27", default="work_data/default", help="default dataset (Colin27 test); skipped if absent")
    p.add_argument("--cal-slices", type=int, default=16)
    p.add_argument("--test-slices", type=int, default=24)
    p.add_argument("--colin27-slices", type=int, default=12)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--sampler", default=None, help="default: the balanced preset's (what reconstruct uses)")
    p.add_argument("--steps", type=int, default=None, help="default: the balanced preset's")
    p.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    p.add_argument("--variants", nargs="+", default=["singlecoil", "multicoil"])
    p.add_argument("--dc", default="hard")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/calibration")
    p.add_argument("--table-from-model", action="store_true",
                   help="measure the calibration table stored in the model (mridiff calibrate) instead of making one")
    p.add_argument("--holdout-val", action="store_true",
                   help="method development: calibrate on half of the validation slices and measure coverage on "
                        "the other half (validation only; the test folder and Colin27 are not read)")
    args = p.parse_args()
    start = time.perf_counter()
    root = Path(args.data)
    rec = Reconstructor(args.model, device="cpu")
    val = {v == "multicoil": sorted((root / f"{v}_val").glob("*.h5"), key=by_number) for v in args.variants}
    if args.holdout_val:  # even-numbered slices calibrate, odd-numbered ones are measured
        held = {mc: evenly_spaced(fs, 2 * args.cal_slices) for mc, fs in val.items()}
        cal_files = {mc: fs[0::2] for mc, fs in held.items()}
    else:
        cal_files = {mc: evenly_spaced(fs, args.cal_slices) for mc, fs in val.items()}
        for extra in args.extra_cal_data:
            for v in args.variants:
                more = sorted((Path(extra) / f"{v}_val").glob("*.h5"), key=by_number)
                cal_files[v == "multicoil"] = cal_files[v == "multicoil"] + evenly_spaced(more, args.cal_slices)
    modes = [Mode(v == "multicoil", acc, args.dc, args.samples) for v in args.variants for acc in args.accelerations]
    if args.table_from_model:  # the table `mridiff calibrate` stored in the model: measure what users get
        cal = dict(rec.model.meta.get("calibration") or {})
        missing = [m.key for m in modes
                   if select_entry(cal.get("table"), m.multicoil, m.acceleration, m.dc, m.samples) is None]
        if missing:
            raise SystemExit(f"the model has no calibration entry for {missing}; run `mridiff calibrate` first")
        used = set(cal.get("files", []))
    else:
        cal = calibrate_model(rec, cal_files, modes, steps=args.steps, sampler=args.sampler, seed=args.seed)
        used = {f.name for fs in cal_files.values() for f in fs}
    # The split files prove it: calibration read validation files only ("glioma/2919.jpg" -> glioma_2919.h5; the
    # template dataset's val split, which calibrates the 128² entries beside the real images prepared at 128²).
    val_names = {line.strip().removesuffix(".jpg").removesuffix(".h5").replace("/", "_")
                 for split in (root / "splits" / "val.txt", Path(args.colin27) / "splits" / "val.txt")
                 if split.is_file() for line in split.read_text().splitlines() if line.strip()}
    outside = sorted(name for name in used if Path(name).stem not in val_names)
    if outside or not used:
        raise SystemExit(f"calibration files outside the validation splits (splits/val.txt): {outside[:3]}")
    slices_used = {key: entry.get("slices") for key, entry in cal["table"].items()
                   if any(key.startswith(m.key) for m in modes)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tests: dict[str, dict[bool, list[Item]]]
    if args.holdout_val:
        tests = {"validation holdout": {mc: middle_slices(fs[1::2]) for mc, fs in held.items()}}
    else:
        tests = {"real test (meningioma)": {v == "multicoil": middle_slices(evenly_spaced(
            sorted((root / f"{v}_test").glob("*.h5"), key=by_number), args.test_slices)) for v in args.variants}}
    colin = Path(args.colin27)
    if not args.holdout_val and (colin / "singlecoil_test" / "colin27.h5").is_file():
        tests["Colin27"] = {v == "multicoil": volume_slices(colin / f"{v}_test" / "colin27.h5", args.colin27_slices)
                            for v in args.variants}
    rows = []
    for name, files in tests.items():
        curves: dict[str, Sequence[tuple[float, float]]] = {}
        for mode in modes:
            row = evaluate(rec, cal, mode, files[mode.multicoil], args.seed)
            row["files"] = len({f.stem for f, _ in files[mode.multicoil]})
            row["data"] = name
            rows.append(row)
            print(json.dumps(row), flush=True)
            curves[mode.key] = [(float(lvl), c["object"]) for lvl, c in row["coverage"].items()]
        reliability_png(curves, out.with_name(f"{out.name}_{name.split()[0].lower()}.png"))
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    header = (f"Calibrated uncertainty, {time.strftime('%Y-%m-%d')}, {machine}, {time.perf_counter() - start:.0f} s. "
              f"Model {rec.model.path.name} ({rec.model.meta.get('sha256', '')[:12]}). Calibration"
              + (" (the table stored in the model by `mridiff calibrate`)" if args.table_from_model else "")
              + f": validation slices per mode {slices_used} (256²: the cheng val split; 128²: the cheng val split "
              "prepared at 128² and the template val volume; checked against the splits/val.txt files; the test "
              "folder and Colin27 never), "
              f"{cal['sampler']}-{cal['steps']}, K={args.samples}, {args.dc} DC, std smoothed by "
              f"{cal['std_smoothing_px']} px. "
              + (f"Measured on {args.cal_slices} other validation slices (method development; real clinical images, "
                 "simulated k-space). " if args.holdout_val else
                 f"Test: real clinical images, simulated k-space ({args.test_slices} meningioma files spread evenly "
                 "over the slice numbers, about 29 apart, so from different patients: about 8.7 slices per patient) "
                 f"and Colin27 (single subject, {args.colin27_slices} slices, simulated k-space). ")
              + "Coverage over object pixels; tumour boxes grown to 16x16. Spearman(std, |error|) over the whole "
                "image (the definition of metrics.uncertainty_calibration, with which the issue's 0.49/0.52 were "
                "measured), and restricted to the object, the tumour boxes and the background. Ceiling: the "
                "Spearman of an oracle map, the true local RMS error smoothed like the std map, with |error|, "
                "whole image / object (it sees the pixel's own error, so it is generous; "
                "benchmarks/uncertainty_ceiling.py measures the stricter ceiling of the expected error).")
    lines = [header, "", "| data | mode | slices | cov 90 % | cov 95 % | cov 90 % in box | cov 95 % in box | "
             "Spearman whole image | Spearman object | Spearman box | Spearman background | ceiling whole / object |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    nan = float("nan")
    for r in rows:
        c90, c95, rho = r["coverage"].get("0.9", {}), r["coverage"].get("0.95", {}), r["spearman"]
        ceil = r.get("spearman_ceiling", {})
        size = f"{r['matrix']}², entry {r['entry'].split(':')[-1]}"
        lines.append(f"| {r['data']} | {r['mode']} ({size}) | {r['slices']} | {c90.get('object', nan):.3f} | "
                     f"{c95.get('object', nan):.3f} | {c90.get('tumour box', nan):.3f} | "
                     f"{c95.get('tumour box', nan):.3f} | {rho.get('whole image', nan):.3f} | "
                     f"{rho.get('object', nan):.3f} | {rho.get('tumour box', nan):.3f} | "
                     f"{rho.get('background', nan):.3f} | {ceil.get('whole image', nan):.2f} / "
                     f"{ceil.get('object', nan):.2f} |")
    atomic_write_text(out.with_suffix(".json"), json.dumps({"header": header, "calibration": cal, "calibration_slices":
                                                    slices_used, "rows": rows}, indent=2), overwrite=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

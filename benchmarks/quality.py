"""mridiff against zero-filled, sigpy and BART compressed sensing and fastMRI's U-Net, in one run on the same slices.

Protocol (../shared/docs/evaluation.md). Default data (``--data cheng``): real clinical T1 CE slices with
simulated k-space (``python -m data_prep.cheng work_data/cheng256``); test = 24 slices of ``meningioma/`` spread
over the slice numbers (never trained on), CS weights tuned on the validation split only; PSNR/SSIM also inside
the tumour boxes. ``--data colin27``: the single-subject volume (models trained on the templates). Every method
sees the same slices and the same seeded 1D random mask (fastMRI centre fractions 0.08 at 4x, 0.04 at 8x); metrics
as fastmri.evaluate on magnitudes (volume NMSE/PSNR, slice-averaged SSIM), with per-slice spread. BART (Debian
package ``bart``) is used when installed, and skipped with a note otherwise.

    python benchmarks/quality.py --unet runs/unet_real/unet_real.safetensors      # the README table
    python benchmarks/quality.py --quick                                          # 2 slices, a check in minutes
    python benchmarks/quality.py --data colin27 --cases singlecoil:4 multicoil:8

The full real-image run takes about 4 CPU-hours on one core, longer than a CPU session: every finished row is kept
in ``<out>.partial/``, and ``--resume`` goes on from there on the same kind of machine (and adds rows of methods
not run before, such as ``--unet`` once it has trained).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import sigpy.mri as mr
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bart import bart_available, bart_pics  # noqa: E402
from unet_baseline import load_unet, unet_reconstruct  # noqa: E402

from mridiff.data.fastmri_h5 import open_scan, read_slice  # noqa: E402
from mridiff.inference.reconstruct import Reconstructor  # noqa: E402
from mridiff.io.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from mridiff.io.figures import panel_png  # noqa: E402
from mridiff.io.hashing import sha256_file  # noqa: E402
from mridiff.metrics import box_metrics, psnr, ssim, uncertainty_calibration, volume_metrics  # noqa: E402
from mridiff.physics.coils import estimate_sens  # noqa: E402
from mridiff.physics.masks import MaskSpec, make_mask  # noqa: E402
from mridiff.physics.operators import MultiCoil  # noqa: E402
from mridiff.tasks.problem import InverseProblem  # noqa: E402
from mridiff.tasks.recon import build_problem  # noqa: E402
from mridiff.workflows.recon import volume_seed  # noqa: E402

DATA = Path("work_data/default")
REAL = Path("work_data/cheng256")  # python -m data_prep.cheng work_data/cheng256
LAMBDAS_FULL = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
LAMBDAS_QUICK = [3e-3, 1e-2, 3e-2, 1e-1]
CS_ITERS = 300  # TV (primal-dual) is far from converged at 100 iterations on these data


class Case:
    """Test (or validation) slices with their mask, coil maps and normalised problems.

    ``items`` are ``(file, slice index)`` pairs: the slices of one volume (Colin27) or one slice of many files
    (the real-image set, one slice per file). All share one seeded mask, so that every method sees the same one.
    """

    def __init__(self, items: list[tuple[Path, int]] | Path, slices: list[int] | int, acc: int,
                 seed: int) -> None:
        if isinstance(items, Path):  # (path, slices): the slices of one volume
            assert isinstance(slices, list)
            items = [(items, i) for i in slices]
        self.items = items
        infos = {path: open_scan(path) for path, _ in items}
        self.info = infos[items[0][0]]
        data = [read_slice(infos[path], i) for path, i in items]
        self.slices = [i for _, i in items]
        self.kspace = torch.from_numpy(np.stack([d.kspace for d in data])).to(torch.complex64)
        self.gt = np.stack([d.target for d in data if d.target is not None]).astype(np.float32)
        self.mask = make_mask(MaskSpec("random", acc), self.info.encoded_size, volume_seed(items[0][0], seed))
        self.multicoil = self.info.multicoil
        self.boxes = [tumour_box(path) for path, _ in items]
        # One set of coil maps (ESPIRiT, or JSENSE below 12 calibration lines) shared by mridiff and CS, so the
        # methods differ only in the prior.
        self.sens = (torch.stack([estimate_sens(k, self.mask, "espirit") for k in self.kspace])
                     if self.multicoil else None)
        self.problem: InverseProblem = build_problem(self.kspace, self.mask, self.sens)


def tumour_box(path: Path) -> list[int] | None:
    """The ``tumor_box`` attribute written by data_prep.cheng (row0, col0, row1, col1), if any."""
    with h5py.File(path, "r") as fh:
        box = fh.attrs.get("tumor_box")
    return None if box is None else [int(v) for v in box]


def evenly_spaced(files: list[Path], n: int) -> list[Path]:
    """``n`` files spread evenly over the list (by index)."""
    if n >= len(files):
        return files
    return [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]


def by_number(path: Path) -> tuple[str, int]:
    """Sort key: ``meningioma_12.h5`` -> ("meningioma", 12)."""
    stem, _, number = path.stem.rpartition("_")
    return (stem, int(number)) if number.isdigit() else (path.stem, 0)


def test_items(dataset: str, variant: str, n: int) -> list[tuple[Path, int]]:
    """The test slices: ``n`` central Colin27 slices, or ``n`` real test files spread over the slice numbers.

    In the real-image set consecutive numbers are usually slices of one patient (about 8.7 per patient in
    meningioma/); picks about 29 numbers apart (n = 24) come from different patients unless one patient has
    more than 29 consecutive slices.
    """
    if dataset == "colin27":
        path = DATA / f"{variant}_test" / "colin27.h5"
        count = open_scan(path).num_slices
        return [(path, int(i)) for i in np.linspace(0.3 * count, 0.7 * count, n).astype(int)]
    files = sorted((REAL / f"{variant}_test").glob("*.h5"), key=by_number)
    return [(f, 0) for f in evenly_spaced(files, n)]


def val_items(dataset: str, variant: str, n: int) -> list[tuple[Path, int]]:
    """Validation slices for tuning CS weights (never test data)."""
    if dataset == "colin27":
        files = sorted((DATA / f"{variant}_val").glob("*.h5"))[:n]
        return [(f, open_scan(f).num_slices // 2) for f in files]
    files = sorted((REAL / f"{variant}_val").glob("*.h5"), key=by_number)
    return [(f, 0) for f in evenly_spaced(files, n)]


UNET_ROW = "fastMRI U-Net (same budget)"
CS_METHODS = {"l1wavelet": "sigpy L1-wavelet CS", "tv": "sigpy TV CS", "bart": "BART pics L1-wavelet"}


def cs_recon(case: Case, method: str, lam: float) -> np.ndarray:
    """sigpy L1-wavelet / TV or BART pics reconstruction of every slice; magnitudes in the input's units."""
    out = []
    prob = case.problem
    assert prob.y is not None  # a reconstruction problem always has measurements
    for i in range(case.kspace.shape[0]):
        y = prob.y[i].numpy()
        if isinstance(prob.operator, MultiCoil):
            mps = prob.operator.sens[i].numpy()
        else:
            y, mps = y[None], np.ones((1, *y.shape), np.complex64)
        if method == "bart":
            x = bart_pics(y, mps, lam, iters=CS_ITERS // 3)
        else:
            weights = case.mask.numpy().astype(np.float32)
            app_cls = mr.app.L1WaveletRecon if method == "l1wavelet" else mr.app.TotalVariationRecon
            x = app_cls(y, mps, lam, weights=weights, max_iter=CS_ITERS, show_pbar=False).run()
        out.append(np.abs(np.asarray(x)) * float(prob.scale[i]))
    return np.stack(out).astype(np.float32)


def tune_lambda(val: list[Case], method: str, grid: list[float]) -> tuple[float, list[dict[str, float]]]:
    """The weight with the best mean PSNR on the validation cases (never on the test data)."""
    scores = []
    for lam in grid:
        vals = [psnr(c.gt, cs_recon(c, method, lam)) for c in val]
        scores.append({"lambda": lam, "val_PSNR": float(np.mean(vals))})
    best = max(scores, key=lambda s: s["val_PSNR"])
    return best["lambda"], scores


def row(case: Case, variant: str, acc: int, method: str, pred: np.ndarray, seconds: float, nfe: str,
        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Volume metrics as fastmri.evaluate, per-slice PSNR/SSIM spread, and PSNR/SSIM inside the tumour boxes."""
    gt = case.gt[: len(pred)]
    m = volume_metrics(gt, pred)
    vmax = float(gt.max())
    per_psnr = [psnr(g, p, vmax) for g, p in zip(gt, pred, strict=True)]
    per_ssim = [ssim(g[None], p[None], vmax) for g, p in zip(gt, pred, strict=True)]
    out = {"variant": variant, "acceleration": acc, "method": method, "slices": len(gt), **m,
           "PSNR_slice_std": float(np.std(per_psnr)), "SSIM_slice_std": float(np.std(per_ssim)),
           "seconds_per_slice": seconds, "nfe": nfe}
    if any(b is not None for b in case.boxes):
        out.update(box_metrics(gt, pred, case.boxes[: len(pred)]))
    out.update(extra or {})
    print(json.dumps(out), flush=True)
    return out


def mridiff_methods(quick: bool, samples: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [
        (f"mridiff DDIM-{s} + DC", {"sampler": "ddim", "steps": s, "dc": "hard", "samples": 1}) for s in (10, 20, 50)]
    out.append(("mridiff DDIM-50, no DC", {"sampler": "ddim", "steps": 50, "dc": "none", "samples": 1}))
    out.append((f"mridiff DDIM-20 + DC, mean of K={samples}",
                {"sampler": "ddim", "steps": 20, "dc": "hard", "samples": samples}))
    # Soft consistency weighs the data by the noise level estimated from the k-space corners (30 dB here); chosen
    # as a second setting because it did better than hard consistency at 8x on the validation slices.
    out.append((f"mridiff DDIM-20 + soft DC, mean of K={samples}",
                {"sampler": "ddim", "steps": 20, "dc": "soft", "samples": samples}))
    return out


class RowCache:
    """Finished rows of an interrupted run, so a run that outlasts a CPU session can go on (``--resume``).

    Every row is written to ``<out>.partial/`` as soon as it is measured: its metrics (JSON) and the example slice
    of its image (``.npy``, for the figure). ``settings.json`` holds what the rows depend on (model hash, data,
    slices, samples, seed, ...); a resumed run with other settings is refused rather than mixed. Rows are keyed by
    case and method, so a later run can also add a method (e.g. the U-Net once it has trained) to finished rows.
    """

    def __init__(self, root: Path, settings: dict[str, Any], resume: bool) -> None:
        self.root, self.resume = root, resume
        stored = root / "settings.json"
        if resume and stored.is_file():
            old = json.loads(stored.read_text())
            if old != settings:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                sys.exit(f"error: {root}: cached rows were measured with other settings ({', '.join(diff)}); "
                         "remove the folder or run without --resume")
        elif root.exists() and not resume:
            for f in root.glob("*"):
                f.unlink()
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stored, settings)
        self.reused = 0

    @staticmethod
    def _slug(key: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in key)

    def get(self, key: str) -> tuple[dict[str, Any], np.ndarray] | None:
        """The cached row and example image of ``key``, when resuming and both were written."""
        meta, img = self.root / f"{self._slug(key)}.json", self.root / f"{self._slug(key)}.npy"
        if not (self.resume and meta.is_file() and img.is_file()):
            return None
        self.reused += 1
        return json.loads(meta.read_text()), np.load(img)

    def put(self, key: str, result: dict[str, Any], example: np.ndarray) -> None:
        """Store a row (image first, then the JSON that marks the row finished)."""
        slug = self._slug(key)
        buffer = io.BytesIO()
        np.save(buffer, example)
        atomic_write_bytes(self.root / f"{slug}.npy", buffer.getvalue(), overwrite=True)
        write_json_atomic(self.root / f"{slug}.json", result)


def cpu_model() -> str:
    """The processor's name: rows resumed from another kind of machine would make the times incomparable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through mridiff's atomic writer: a killed run leaves no half-written file."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n", overwrite=True)


def run_case(variant: str, acc: int, args: argparse.Namespace, rec: Reconstructor, unet: torch.nn.Module | None,
             lambdas: dict[str, float], cache: RowCache) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Every method's row on one case; ``images`` holds each method's example slice (the figure's)."""
    case = Case(test_items(args.data, variant, args.slices), [], acc, args.seed)
    n = len(case.items)
    ex = n // 2 if args.quick else 0  # the slice shown in the figure
    rows: list[dict[str, Any]] = []
    images = {"target": case.gt[ex]}

    def measured(name: str, compute: Any, version: str = "") -> None:
        """Reuse the cached row of ``name`` (at ``version``) or compute it: ``compute() -> (row, image, std)``."""
        key = f"{variant}:{acc}:{name}{version}"
        hit = cache.get(key)
        if hit is None and args.only and not any(part in name for part in args.only):
            print(f"skipped (not in --only): {key}", flush=True)
            return
        if hit is None:
            result, pred, std = compute()
            example = np.stack([pred[ex], std[ex] if std is not None else np.full_like(pred[ex], np.nan)])
            cache.put(key, result, example)
        else:
            result, example = hit
            print(f"reused: {key}", flush=True)
        rows.append(result)
        images[name] = example[0]
        if not np.isnan(example[1]).all():
            images["std"] = example[1]

    def zero_filled() -> tuple[dict[str, Any], np.ndarray, None]:
        cond = case.problem.cond
        assert cond is not None  # A^H y, the zero-filled image
        zf = np.abs(cond.numpy()) * case.problem.scale.numpy()[:, None, None]
        if case.multicoil:  # the protocol's zero-filled baseline for multi-coil data is the RSS of the coil images
            zf = rec.reconstruct(case.kspace, case.mask, multicoil=True, steps=1, dc="none", sens=case.sens).zero_filled
        return row(case, variant, acc, "zero-filled", zf, 0.0, "-"), zf, None

    measured("zero-filled", zero_filled)
    for method in args.cs:
        def cs(method: str = method) -> tuple[dict[str, Any], np.ndarray, None]:
            lam = lambdas[f"{variant}:{acc}:{method}"]
            start = time.perf_counter()
            pred = cs_recon(case, method, lam)
            iters = CS_ITERS // 3 if method == "bart" else CS_ITERS
            return (row(case, variant, acc, CS_METHODS[method], pred, (time.perf_counter() - start) / n,
                        f"{iters} it", {"lambda": lam}), pred, None)
        measured(CS_METHODS[method], cs)
    if unet is not None:
        def unet_row() -> tuple[dict[str, Any], np.ndarray, None]:
            assert unet is not None and case.problem.cond is not None
            start = time.perf_counter()
            pred = (unet_reconstruct(unet, case.problem.cond) * case.problem.scale[:, None, None]).numpy()
            return (row(case, variant, acc, UNET_ROW, pred, (time.perf_counter() - start) / n, "1"), pred, None)
        measured(UNET_ROW, unet_row, f"@{args.unet_sha256[:12]}")  # weights that trained on are measured anew
    plan = mridiff_methods(args.quick, args.samples)
    if not args.quick and f"{variant}:{acc}" in args.ddpm_cases:
        plan.append(("mridiff DDPM-1000 + DC", {"sampler": "ddpm", "steps": 1000, "dc": "hard", "samples": 1,
                                                "subset": args.ddpm_slices}))
    for name, kw in plan:
        kw = dict(kw)
        subset = kw.pop("subset", n)
        label = name if subset == n else f"{name} ({subset} slice{'s' * (subset > 1)})"

        def sample(kw: dict[str, Any] = kw, subset: int = subset, label: str = label
                   ) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
            res = rec.reconstruct(case.kspace[:subset], case.mask, multicoil=case.multicoil, seed=args.seed,
                                  batch_size=min(subset, 4),
                                  sens=None if case.sens is None else case.sens[:subset], **kw)
            extra: dict[str, Any] = {}
            if kw["samples"] > 1:
                extra = uncertainty_calibration(case.gt[:subset], res.mean, res.std)
            nfe = str(res.nfe * kw["samples"])
            result = row(case, variant, acc, label, res.mean, res.seconds_per_slice, nfe, extra)
            std = res.std if kw["samples"] > 1 and len(res.mean) > ex else None
            pred = res.mean if len(res.mean) > ex else np.full((ex + 1, *case.gt.shape[1:]), np.nan, np.float32)
            return result, pred, std
        measured(label, sample)
    images = {k: v for k, v in images.items() if not np.isnan(v).all()}
    return rows, images


def _short(name: str) -> str:
    """Column labels that fit above a 128-pixel image."""
    for old, new in (("mridiff ", ""), (" (same budget)", ""), ("sigpy ", ""), (" + DC, mean of K=", " K="),
                     (" + soft DC, mean of K=", " soft K="),
                     (" + DC", "+DC"), (", no DC", " noDC")):
        name = name.replace(old, new)
    return name


def figure(images: dict[str, np.ndarray], path: Path) -> None:
    """One example slice per method: images on top, |error| x3 below (same grey scale), std map last."""
    gt = images["target"]
    names = [k for k in images if k not in ("target", "std")]
    vmax = float(np.percentile(gt, 99.5))
    top = [gt] + [images[k] for k in names] + [images["std"] * 5]
    bottom = [np.zeros_like(gt)] + [np.abs(images[k] - gt) * 3 for k in names] + [np.zeros_like(gt)]
    labels = ["target"] + [_short(k) for k in names] + ["std x5"]
    panel_png([top, bottom], labels, path, vmaxes=[vmax] * len(labels), overwrite=True)


def markdown(rows: list[dict[str, Any]], header: str, data_label: str) -> str:
    lines = [header, "", "| data | accel | method | NMSE | PSNR (dB) | SSIM | box PSNR | box SSIM | s/slice | NFE "
             "| std-error Spearman | ±2σ coverage |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cal = (f"{r['spearman']:.3f} | {r['coverage_2sigma']:.3f}" if "spearman" in r else "- | -")
        box = f"{r['box_PSNR']:.2f} | {r['box_SSIM']:.4f}" if "box_PSNR" in r else "- | -"
        lines.append(f"| {data_label} {r['variant']} | {r['acceleration']}x | {r['method']} | {r['NMSE']:.4f} | "
                     f"{r['PSNR']:.2f} ± {r['PSNR_slice_std']:.2f} | {r['SSIM']:.4f} ± {r['SSIM_slice_std']:.4f} | "
                     f"{box} | {r['seconds_per_slice']:.2f} | {r['nfe']} | {cal} |")
    return "\n".join(lines) + "\n"


def describe(args: argparse.Namespace, unet_meta: dict[str, Any] | None, train_data: str | None = None) -> str:
    """The protocol line of the table header; ``train_data``: the mridiff model's training data (its model card)."""
    unet = (f"U-Net: fastmri.models.Unet, {unet_meta.get('steps')} steps in {unet_meta.get('train_seconds')} s "
            f"({unet_meta.get('budget', 'wall-clock seconds')}), the same budget as the mridiff model. "
            if unet_meta else "U-Net: not run (no weights given). ")
    if args.data == "colin27":
        data = (f"Test: Colin27 (one subject, never trained on), {args.slices} central axial slices, 128x128, "
                "**simulated k-space**. mridiff trained on "
                f"`{train_data or 'unknown (no model card)'}`. CS weights tuned on template validation slices. ")
    else:
        data = (f"Test: **real clinical images, simulated k-space**: {args.slices} slices of the meningioma/ "
                "folder of the Cheng brain-tumour set (never trained on, never used to choose anything), spread "
                "evenly over the slice numbers (about 29 apart, so from different patients), 256x256. CS weights "
                "tuned on the validation split (glioma/pituitary, highest 10 % of numbers). Box figures: inside "
                "the tumour boxes of the release (grown to at least 16x16). ")
    return (data + "k-space: smooth random phase; multi-coil 8 coils, maps (ESPIRiT, JSENSE below 12 calibration "
            "lines) shared by CS and mridiff; 30 dB noise. 1D random masks, centre fraction 0.08 (4x) / 0.04 (8x), "
            "one seeded mask per case for every method. Metrics as fastmri.evaluate (PSNR ± per-slice std, SSIM ± "
            f"per-slice std). sigpy CS: {CS_ITERS} iterations; BART pics: {CS_ITERS // 3} iterations. " + unet +
            "NFE = network evaluations per slice (all K samples).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=["cheng", "colin27"], default="cheng",
                   help="cheng: real clinical test images (data_prep.cheng); colin27: the single-subject volume")
    p.add_argument("--quick", action="store_true", help="2 test slices, 1 validation slice, no DDPM-1000")
    p.add_argument("--ckpt", default=None, help="mridiff exported model (default: the bundled one)")
    p.add_argument("--unet", default=None, help="fastMRI U-Net weights trained on the same data (skipped if absent)")
    p.add_argument("--slices", type=int, default=None, help="test slices (default 24 real / 6 Colin27; quick 2)")
    p.add_argument("--val-slices", type=int, default=None, help="validation slices for the CS weights (default 4)")
    p.add_argument("--samples", type=int, default=4, help="K for the uncertainty row")
    p.add_argument("--cs", nargs="*", default=["l1wavelet", "tv", "bart"], choices=sorted(CS_METHODS))
    p.add_argument("--ddpm-cases", nargs="*", default=["singlecoil:4", "multicoil:8"])
    p.add_argument("--ddpm-slices", type=int, default=1)
    p.add_argument("--cases", nargs="+", default=["singlecoil:4", "singlecoil:8", "multicoil:8"],
                   help="variant:acceleration pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                   help="compute only the rows whose method name contains one of these (others are reused from "
                        "the --resume cache or left out): to share one case's rows between two processes, each "
                        "with its own --out, then merge the .partial folders and --resume once more")
    p.add_argument("--out", default=None, help="output stem (default benchmarks/results/quality[_quick])")
    p.add_argument("--resume", action="store_true",
                   help="reuse the rows (and CS weights) an interrupted run with the same settings left in "
                        "<out>.partial/; rows of methods not run before (e.g. --unet) are added")
    args = p.parse_args()
    args.slices = args.slices or (2 if args.quick else (24 if args.data == "cheng" else 6))
    n_val = args.val_slices or (1 if args.quick else 4)
    if "bart" in args.cs and not bart_available():
        print("note: bart is not installed (apt-get install bart); the BART pics row is skipped", flush=True)
        args.cs = [m for m in args.cs if m != "bart"]
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases]
    stem = f"quality{'_colin27' if args.data == 'colin27' else ''}{'_quick' if args.quick else ''}"
    out = Path(args.out or f"benchmarks/results/{stem}")
    start_all = time.perf_counter()
    rec = Reconstructor(args.ckpt, device="cpu")
    unet = load_unet(args.unet) if args.unet and Path(args.unet).is_file() else None
    if args.unet and unet is None:
        print(f"note: {args.unet} not found; the U-Net row is skipped", flush=True)
    grid = LAMBDAS_QUICK if args.quick else LAMBDAS_FULL
    settings = {"model_sha256": rec.model.meta.get("sha256"), "data": args.data, "slices": args.slices,
                "val_slices": n_val, "samples": args.samples, "seed": args.seed, "quick": args.quick,
                "ddpm_slices": args.ddpm_slices, "lambda_grid": grid, "cs_iters": CS_ITERS, "cpu": cpu_model(),
                "torch": torch.__version__,
                "unet_sha256": sha256_file(args.unet) if unet is not None else None}
    args.unet_sha256 = settings["unet_sha256"]
    cache = RowCache(out.with_suffix(".partial"), {k: v for k, v in settings.items() if k != "unet_sha256"},
                     args.resume)
    tuned_file = cache.root / "lambdas.json"
    tuned = json.loads(tuned_file.read_text()) if args.resume and tuned_file.is_file() else {}
    lambdas: dict[str, float] = tuned.get("lambdas", {})
    tuning: dict[str, Any] = tuned.get("tuning", {})
    for variant, acc in cases:
        for method in args.cs:
            key = f"{variant}:{acc}:{method}"
            if key in lambdas:
                continue
            val = [Case(val_items(args.data, variant, n_val), [], acc, args.seed)]
            lam, scores = tune_lambda(val, method, grid)
            lambdas[key], tuning[key] = lam, scores
            write_json_atomic(tuned_file, {"lambdas": lambdas, "tuning": tuning})
            print(f"tuned {variant} {acc}x {method}: lambda={lam}", flush=True)
    rows: list[dict[str, Any]] = []
    example: dict[str, np.ndarray] = {}
    for variant, acc in cases:
        case_rows, images = run_case(variant, acc, args, rec, unet, lambdas, cache)
        rows += case_rows
        example = images
    unet_meta = json.loads(Path(args.unet).with_suffix(".json").read_text()) if unet is not None else None
    model_meta = {"path": str(rec.model.path), "sha256": rec.model.meta.get("sha256"),
                  "training": rec.model.meta.get("training", {})}
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    header = (f"Reconstruction quality, {time.strftime('%Y-%m-%d')}, {machine}, "
              f"{time.perf_counter() - start_all:.0f} s in all{' (--quick)' if args.quick else ''}"
              + (f", {cache.reused} rows reused from an interrupted run on this machine (--resume)"
                 if cache.reused else "") + ". "
              + describe(args, unet_meta, model_meta['training'].get('data_root')))
    result = {"header": header, "args": vars(args), "settings": settings, "lambdas": lambdas,
              "lambda_tuning": tuning,
              "unet": unet_meta, "mridiff_model": str(args.ckpt or "bundled"), "model_meta": model_meta,
              "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_suffix(".json"), result)
    label = "Colin27" if args.data == "colin27" else "real (meningioma)"
    atomic_write_text(out.with_suffix(".md"), markdown(rows, header, label), overwrite=True)
    if example and "std" in example:
        figure(example, out.with_suffix(".png"))
    print(markdown(rows, header, label))


if __name__ == "__main__":
    main()

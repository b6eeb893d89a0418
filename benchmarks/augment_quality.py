"""Augmentation quality: generated slices vs held-out real slices (kernel MMD), diversity and memorisation.

* Features (per image, after dividing by its 99th percentile, the training normalisation):
  - intensity histogram: 16 bins on [0, 1.6] (fractions of all pixels);
  - gradient magnitude (numpy central differences): mean, std, 50th/90th/99th percentile;
  - wavelet energies (pywt ``wavedec2``, db2, 3 levels): the share of the total energy in the approximation and in
    each of the 9 detail subbands.
  31 numbers, standardised with the mean and std of all images compared (generated, held-out real, training), so
  that a feature constant in one set (e.g. empty top histogram bins) cannot dominate the distances.
* MMD: unbiased MMD^2 with a Gaussian kernel ``exp(-d^2 / s)``, ``s`` = the median squared pairwise distance within
  the held-out real set, the same for every comparison. References: training vs held-out real slices (the gap
  between the training subjects and the test subject) and two halves of the held-out set (~0 = indistinguishable).
* Diversity: mean pairwise MS-SSIM within a set (lower = more diverse). MS-SSIM here: skimage
  ``structural_similarity`` (7x7 window) at every level of a 2x2-mean pyramid, combined as a weighted geometric mean
  with Wang et al.'s weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), truncated and renormalised to the number of
  levels that fit the image (coarsest side >= 7 pixels, at most 5); SSIM below 0 counts as 0. (Wang's version uses
  contrast-structure only below the coarsest level; using full SSIM at every level is a documented simplification.)
* Memorisation: ``mridiff.workflows.audit`` against the training slices, at its default thresholds.

    python benchmarks/augment_quality.py --ckpt runs/augment_real/model.safetensors    # real data (data_prep.cheng)
    python benchmarks/augment_quality.py --real work_data/default/singlecoil_test \
        --train work_data/default/singlecoil_train                                     # templates / Colin27
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pywt
import torch
from skimage.metrics import structural_similarity

from mridiff.data.transforms import normalise_percentile
from mridiff.inference.generate import SampleGenerator, sample_seed
from mridiff.inference.model import training_summary
from mridiff.io.atomic import atomic_write_text
from mridiff.io.figures import panel_png
from mridiff.io.outputs import write_json
from mridiff.workflows.audit import audit, load_training_slices, memorisation_rate, prepare

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def features(image: np.ndarray) -> np.ndarray:
    """The 31 features of one magnitude image (H, W) (see module docstring)."""
    img = normalise_percentile(np.abs(image).astype(np.float64))[0]
    hist = np.histogram(np.clip(img, 0, 1.6), bins=16, range=(0, 1.6))[0] / img.size
    gy, gx = np.gradient(img)
    grad = np.hypot(gx, gy)
    grad_stats = [grad.mean(), grad.std(), *np.percentile(grad, [50, 90, 99])]
    coeffs = pywt.wavedec2(img, "db2", level=3)
    energies = [float(np.sum(coeffs[0] ** 2))] + [float(np.sum(c**2)) for level in coeffs[1:] for c in level]
    total = max(sum(energies), 1e-12)
    return np.array([*hist, *grad_stats, *(e / total for e in energies)])


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows of (n, d) and (m, d)."""
    return np.asarray(((a[:, None] - b[None]) ** 2).sum(-1))


def mmd2(x: np.ndarray, y: np.ndarray, sigma2: float) -> float:
    """Unbiased MMD^2 between feature sets (n, d) and (m, d) with the Gaussian kernel exp(-d^2 / sigma2)."""
    pooled = np.concatenate([x, y])
    k = np.exp(-sq_dists(pooled, pooled) / sigma2)
    n = len(x)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    m = len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two normalised images with the number of levels fitted to their size (module docstring)."""
    levels = int(min(5, np.floor(np.log2(min(a.shape) / 7)) + 1))
    weights = np.array(MSSSIM_WEIGHTS[:levels]) / sum(MSSSIM_WEIGHTS[:levels])
    data_range = float(max(a.max(), b.max())) or 1.0
    value = 1.0
    for level, w in enumerate(weights):
        if level:
            h, wd = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
            a = a[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
            b = b[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
        s = structural_similarity(a, b, data_range=data_range, win_size=7)
        value *= max(float(s), 0.0) ** w
    return value


def diversity(images: np.ndarray) -> float:
    """Mean pairwise MS-SSIM within a set of normalised images (N, H, W)."""
    return float(np.mean([ms_ssim(images[i], images[j]) for i, j in itertools.combinations(range(len(images)), 2)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="augmentation model (default: the bundled one)")
    parser.add_argument("--n", type=int, default=16, help="generated samples")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", default="work_data/cheng256/singlecoil_test",
                        help="held-out real slices (default: the real test folder, meningioma/, never trained on)")
    parser.add_argument("--train", default="work_data/cheng256/train_images.h5",
                        help="the training slices (an image bank or a directory of fastMRI files)")
    parser.add_argument("--max-real", type=int, default=240, help="held-out slices used (evenly spaced)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    gen = SampleGenerator(args.ckpt, device=args.device)
    size = gen.image_size[0]
    batches = [gen.generate([sample_seed(args.seed, i) for i in range(s, min(s + args.batch, args.n))], args.steps)
               for s in range(0, args.n, args.batch)]
    fake = np.concatenate(batches)
    _, real = load_training_slices([Path(args.real)], size)
    real = real[np.linspace(0, len(real) - 1, min(len(real), args.max_real)).round().astype(int)]
    train_labels, train = load_training_slices([Path(args.train)], size)
    fake_n = np.stack([prepare(f, size) for f in fake])

    f_real = np.stack([features(r) for r in real])
    f_fake = np.stack([features(f) for f in fake_n])
    f_train = np.stack([features(t) for t in train])
    pooled = np.concatenate([f_real, f_fake, f_train])
    mu, sd = pooled.mean(0), pooled.std(0) + 1e-8
    z_real, z_fake, z_train = ((f - mu) / sd for f in (f_real, f_fake, f_train))
    d2_real = sq_dists(z_real, z_real)
    sigma2 = float(np.median(d2_real[np.triu_indices(len(z_real), 1)])) or 1.0
    rng = np.random.default_rng(0)
    real_div = real[rng.choice(len(real), size=min(len(real), args.n), replace=False)]
    rows = audit(np.stack([prepare(f) for f in fake]), [f"sample {i}" for i in range(len(fake))],
                 np.stack([prepare(t) for t in train]), train_labels)
    res: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "settings": {"n": args.n, "steps": args.steps, "sampler": "ddim eta=0", "seed": args.seed,
                     "ckpt": str(gen.model.path), "sha256": gen.sha256, "image_size": size},
        "data": {"real": args.real, "real_slices": len(real), "train": args.train, "train_slices": len(train)},
        "mmd2_generated_vs_real": mmd2(z_fake, z_real, sigma2),
        "mmd2_train_vs_real_reference": mmd2(z_train, z_real, sigma2),
        "mmd2_real_half_vs_half_reference": mmd2(z_real[::2], z_real[1::2], sigma2),
        "diversity_ms_ssim_generated": diversity(fake_n),
        "diversity_ms_ssim_real": diversity(real_div),
        "memorisation_rate": memorisation_rate(rows),
        "nearest_train_ssim_median": float(np.median([r.ssim for r in rows])),
        "caveat": training_summary(gen.model.meta),
    }
    out = Path(args.out)
    write_json(out / "augment_quality.json", res)
    text = "\n".join([
        f"# Augmentation quality ({res['date']})", "",
        f"{args.n} samples, DDIM {args.steps} steps (eta 0), model `{res['settings']['ckpt']}`; "
        f"real: {len(real)} held-out slices from `{args.real}`; training: {len(train)} slices.",
        f"Machine: {res['machine']['platform']}, torch threads {res['machine']['torch_threads']}.", "",
        "| metric | generated | reference |", "|---|---|---|",
        f"| kernel MMD^2 vs held-out real (31 features) | {res['mmd2_generated_vs_real']:.4f} | "
        f"{res['mmd2_train_vs_real_reference']:.4f} (training vs held-out real); "
        f"{res['mmd2_real_half_vs_half_reference']:.4f} (held-out halves) |",
        f"| mean pairwise MS-SSIM (lower = more diverse) | {res['diversity_ms_ssim_generated']:.4f} | "
        f"{res['diversity_ms_ssim_real']:.4f} (real) |",
        f"| memorisation rate (audit defaults) | {res['memorisation_rate']:.3f} | |",
        f"| median nearest-training SSIM | {res['nearest_train_ssim_median']:.3f} | |",
    ] + (["", f"Note: {res['caveat']}"] if res["caveat"] else [])) + "\n"
    atomic_write_text((out / "augment_quality.md"), text, overwrite=True)
    sheet = [list(fake_n[i : i + 4]) for i in range(0, min(len(fake_n), 16), 4) if len(fake_n[i : i + 4]) == 4]
    if sheet:  # the 4x4 contact sheet of generated slices
        panel_png(sheet, ["", "", "", ""], out / "augment_contact_sheet.png", vmaxes=[1.5] * 4, overwrite=True)
    grid = [list(fake_n[i : i + 4]) for i in range(0, min(len(fake_n), 8), 4)] + [list(real_div[:4])]
    panel_png(grid, ["", "", "", ""], out / "augment_samples.png", vmaxes=[1.5] * 4, overwrite=True,
              row_labels=["generated", "generated", "real"][: len(grid) - 1] + ["real"])
    print(text)


if __name__ == "__main__":
    main()

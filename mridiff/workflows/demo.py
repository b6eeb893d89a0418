"""``mridiff demo``: a real result from the first command, on a 2-core CPU, with the bundled model.

1. Build a sample scan: the bundled real test slices (four T1 CE slices of the Cheng brain-tumour set's test folder
   ``meningioma/``, never trained on; ``mridiff/data/demo_cheng.npz``) -> simulated 8-coil k-space (smooth phase,
   coil maps, 30 dB noise, as ``mridiff prepare cheng`` simulates its test files), in fastMRI's multi-coil layout.
2. Reconstruct it at 4x and 8x (random 1D masks, fastMRI centre fractions) with the default preset (balanced) and K
   samples, through the same file workflow as ``mridiff reconstruct``.
3. Print PSNR/SSIM of zero-filled against mridiff, seconds per slice and the PNG panels, labelled "real clinical
   images (test split), simulated k-space", with the images' attribution (CC BY 4.0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mridiff.data.h5_writer import SimulationSpec, write_simulated_scan
from mridiff.inference.options import SamplingOptions, preset_options
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import check_writable
from mridiff.io.outputs import write_json
from mridiff.workflows.recon import ReconOptions, reconstruct_file

DEMO_DATA = "demo_cheng.npz"
DEMO_SCAN = "cheng_test_demo.h5"
DEMO_COILS = 8
DEMO_SNR_DB = 30.0  # the noise of `mridiff prepare cheng`'s test files


@dataclass(frozen=True)
class DemoData:
    """The bundled demo slices and what to say about them.

    Attributes:
        images: float32 ``(S, H, W)`` magnitudes in [0, 1].
        source_indices: each slice's number in its source folder (it seeds the k-space simulation).
        fov_mm: ``(rows, cols, thickness)`` of one slice in mm.
        acquisition: the scan's acquisition attribute.
        intensity_scale: what the stored values were divided by.
        label: how to label every result on them.
        source: which slices they are.
        licence: licence and attribution of the images.
    """

    images: np.ndarray
    source_indices: np.ndarray
    fov_mm: tuple[float, float, float]
    acquisition: str
    intensity_scale: float
    label: str
    source: str
    licence: str


def load_demo_data() -> DemoData:
    """The slices bundled in ``mridiff/data/demo_cheng.npz`` (``mridiff prepare demo-data`` writes it)."""
    with np.load(str(resources.files("mridiff") / "data" / DEMO_DATA)) as data:
        scale = float(data["intensity_scale"])
        fov = tuple(float(v) for v in data["fov_mm"])
        return DemoData(images=data["images"].astype(np.float32) / scale,
                        source_indices=data["source_indices"].astype(np.int64),
                        fov_mm=(fov[0], fov[1], fov[2]), acquisition=str(data["acquisition"]),
                        intensity_scale=scale, label=str(data["label"]), source=str(data["source"]),
                        licence=str(data["licence"]))


@dataclass
class DemoOptions:
    """Knobs of the demo (the defaults fit well under 3 minutes on one core of a 2-core CPU).

    ``preset`` chooses sampler, steps and data consistency as ``mridiff reconstruct`` does; ``steps``, ``sampler``
    and ``dc`` override its parts.
    """

    out: Path = Path("mridiff-demo")
    preset: str = "balanced"
    steps: int | None = None
    sampler: str | None = None
    dc: str | None = None
    samples: int = 2
    accelerations: tuple[int, ...] = (4, 8)
    ckpt: str | None = None
    overwrite: bool = False
    progress: bool = True
    seed: int = 0

    def sampling(self) -> SamplingOptions:
        """The preset with this demo's overrides (``ValueError`` for a bad choice)."""
        return preset_options(self.preset, steps=self.steps, sampler=self.sampler, dc=self.dc, samples=self.samples,
                              seed=self.seed)


def demo_scan(out: Path, overwrite: bool, data: DemoData | None = None) -> Path:
    """Write the demo scan (simulated multi-coil k-space from the bundled test slices) and return its path."""
    data = data or load_demo_data()
    spec = SimulationSpec(coils=DEMO_COILS, seed=0, snr_db=DEMO_SNR_DB, acquisition=data.acquisition)
    return write_simulated_scan(out / DEMO_SCAN, data.images, data.source_indices, spec, fov_mm=data.fov_mm,
                                source_volume=Path(DEMO_SCAN).stem, intensity_scale=data.intensity_scale,
                                overwrite=overwrite)


def run_demo(opts: DemoOptions) -> list[dict[str, Any]]:
    """Run the demo; returns one result row per acceleration."""
    sampling = opts.sampling()
    check_writable(opts.out / DEMO_SCAN, opts.overwrite)
    data = load_demo_data()
    scan = demo_scan(opts.out, opts.overwrite, data)
    rec = Reconstructor(opts.ckpt)
    rows = []
    for acc in opts.accelerations:
        recon_opts = ReconOptions(steps=sampling.steps, sampler=sampling.sampler.value, dc=sampling.dc.value,
                                  cg_iters=sampling.cg_iters, samples=sampling.samples, acceleration=acc,
                                  mask_type="random", seed=opts.seed, batch_size=4, overwrite=opts.overwrite,
                                  progress=opts.progress)
        start = time.perf_counter()
        metrics = reconstruct_file(scan, opts.out / f"x{acc}", rec, recon_opts)
        metrics["wall_seconds"] = time.perf_counter() - start
        metrics["acceleration"] = acc
        rows.append(metrics)
    write_json(opts.out / "metrics.json",
               {"rows": rows, "model": str(rec.model.path), "label": data.label, "images": data.source,
                "licence": data.licence, "preset": opts.preset,
                "sampling": {"sampler": sampling.sampler.value, "steps": sampling.steps, "dc": sampling.dc.value,
                             "samples": sampling.samples}},
               overwrite=True)
    return rows


def describe(opts: DemoOptions, data: DemoData | None = None) -> list[str]:
    """The header lines the demo prints: what the images are (with their attribution) and how they were sampled."""
    data = data or load_demo_data()
    s = opts.sampling()
    num, h, w = data.images.shape
    return [f"mridiff demo: {data.label}: {num} T1 CE slices of the test folder meningioma/ (Cheng brain-tumour set, "
            f"never trained on), {DEMO_COILS}-coil k-space simulated at {DEMO_SNR_DB:g} dB, {h}x{w}",
            f"  preset {opts.preset}: {s.sampler.value.upper()}-{s.steps} + {s.dc.value} data consistency, "
            f"K={s.samples} samples",
            f"  images: {data.licence}"]


def format_table(rows: list[dict[str, Any]], label: str | None = None) -> str:
    """A plain-text table of the demo results, under ``label`` when given."""
    lines = [label] if label else []
    lines += ["accel | zero-filled PSNR / SSIM | mridiff PSNR / SSIM | s/slice | figure",
              "------|-------------------------|---------------------|---------|-------"]
    for r in rows:
        z, m = r["zero_filled"], r["mridiff"]
        lines.append(f"{r['acceleration']:>4}x | {z['PSNR']:>8.2f} dB / {z['SSIM']:.3f}  | {m['PSNR']:>6.2f} dB / "
                     f"{m['SSIM']:.3f}  | {r['seconds_per_slice']:>7.2f} | {r['outputs']['png']}")
    return "\n".join(lines)

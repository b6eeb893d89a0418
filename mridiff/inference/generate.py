"""Synthetic training data from the unconditional (augmentation) model: batched, seeded per sample, restartable.

    from mridiff.inference.generate import SampleGenerator
    gen = SampleGenerator()                                 # bundled model, or SampleGenerator("model.safetensors")
    images = gen.generate([sample_seed(0, i) for i in range(8)], steps=50)   # float32 (8, H, W)

Sample ``i`` of a run with base seed ``b`` starts from noise drawn with ``sample_seed(b, i)`` and is sampled with
deterministic DDIM (eta = 0), so it is the same image whatever batch it runs in and whichever run produces it:
a directory can be grown with ``--n`` (the target total) and finished samples are never rewritten.

Images are normalised magnitudes: the training slices were divided by their 99th percentile, so generated
slices have a 99th percentile near 1. Negative values (noise around the zero background) are clipped to 0.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from mridiff.data.ismrmrd import build_header
from mridiff.data.nifti import write_nifti
from mridiff.data.simulate import ifft2c_np, simulate_kspace
from mridiff.diffusion.loop import reverse_diffusion
from mridiff.diffusion.samplers import DDIMSampler, complex_randn
from mridiff.errors import InputError
from mridiff.inference.batching import run_chunked
from mridiff.inference.model import LoadedModel, load_model
from mridiff.io.atomic import atomic_path, atomic_write_text, check_writable
from mridiff.io.outputs import volume_to_nifti_array
from mridiff.physics.masks import MaskSpec, default_center_fraction, make_mask

FORMATS: dict[str, str] = {"nifti": ".nii.gz", "h5": ".h5", "png": ".png"}
MANIFEST = "manifest.csv"
SAMPLE_DIR = "samples"  # a folder of sample files only: fastmri.data.SliceDataset opens every file in its root
MANIFEST_FIELDS: tuple[str, ...] = ("file", "index", "seed", "checkpoint_sha256", "steps", "mode", "format")
SAMPLER_MODE = "ddim-eta0"
PNG_WHITE = 2.0  # normalised intensity stored as 65535 in 16-bit PNGs (training slices' 99th percentile is 1)
VOXEL_MM = 1.0  # nominal: the model card does not record the training voxel size
_NAME = re.compile(r"^sample_(\d{6})\.(nii\.gz|h5|png)$")


def sample_seed(base_seed: int, index: int) -> int:
    """Return the noise seed of sample ``index`` in a run with ``base_seed`` (independent streams per sample)."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0])


def sample_name(index: int, fmt: str) -> str:
    """Path of sample ``index`` relative to the output directory, e.g. ``samples/sample_000012.nii.gz``."""
    return f"{SAMPLE_DIR}/sample_{index:06d}{FORMATS[fmt]}"


class SampleGenerator:
    """Unconditional DDPM sampling of magnitude slices.

    Args:
        ckpt: exported augmentation model; ``None`` for the bundled one.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (auto).
        expect_sha256: refuse weights whose SHA-256 differs.

    """

    def __init__(self, ckpt: str | os.PathLike[str] | None = None, device: str | None = None,
                 expect_sha256: str | None = None) -> None:
        self.model: LoadedModel = load_model(ckpt, "augment", device, expect_sha256)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the training slices (the size samples are drawn at)."""
        size = self.model.meta.get("training", {}).get("image_size") or [128, 128]
        return int(size[0]), int(size[1])

    @property
    def sha256(self) -> str:
        """SHA-256 of the model weights (checked when loading)."""
        return str(self.model.meta.get("sha256", ""))

    def generate(self, seeds: Sequence[int], steps: int = 50, progress: bool = False) -> np.ndarray:
        """Draw one sample per seed, all in one batch.

        Args:
            seeds: per-sample noise seeds (see :func:`sample_seed`).
            steps: DDIM steps (NFE per sample).
            progress: show a progress bar over steps.

        Returns:
            float32 ``(len(seeds), H, W)`` non-negative normalised magnitudes.

        """
        net, schedule, device = self.model.net, self.model.schedule, self.model.device
        height, width = self.image_size
        dtype = torch.complex64 if net.config.state_channels == 2 else torch.float32
        like = torch.zeros(len(seeds), height, width, dtype=dtype, device=device)
        noise = torch.cat([complex_randn(like[:1], torch.Generator().manual_seed(int(s))) for s in seeds])
        out = reverse_diffusion(net, schedule, DDIMSampler(schedule, steps, eta=0.0), like, None, None, None, None,
                                progress=progress, desc="steps", x_init=noise)
        mag = out.abs() if out.is_complex() else out.clamp_min(0.0)
        return mag.float().cpu().numpy()


@dataclass
class AugmentOptions:
    """What ``mridiff augment`` writes (CLI flags map one to one).

    Attributes:
        n: target total number of samples in the directory.
        steps: DDIM steps.
        batch: samples per batch (halves on GPU out-of-memory).
        seed: base seed (sample ``i`` uses :func:`sample_seed`).
        fmt: ``nifti``, ``h5`` or ``png``.
        with_kspace: write fastMRI-layout HDF5 with simulated k-space (``fmt`` must be ``h5``).
        coils: simulated coils (1 = single-coil layout).
        acceleration: also store a seeded 1D ``sampling_mask`` at this acceleration, or ``None``.
        snr_db: SNR of the simulated k-space noise.
        progress: show a progress bar.

    """

    n: int
    steps: int = 50
    batch: int = 8
    seed: int = 0
    fmt: str = "nifti"
    with_kspace: bool = False
    coils: int = 8
    acceleration: int | None = None
    snr_db: float = 30.0
    progress: bool = True

    @property
    def mode(self) -> str:
        """How a file is produced (stored in the manifest): sampler, plus the k-space simulation if any."""
        if not self.with_kspace:
            return SAMPLER_MODE
        acc = f"-R{self.acceleration}" if self.acceleration else ""
        return f"{SAMPLER_MODE}+kspace-{self.coils}coil-{self.snr_db:g}dB{acc}"

    def validate(self) -> None:
        """Raise :class:`InputError` for settings that cannot work."""
        if self.n < 1:
            raise InputError(None, f"--n must be at least 1, got {self.n}")
        if self.seed < 0:
            raise InputError(None, f"--seed must be >= 0, got {self.seed}")
        if self.fmt not in FORMATS:
            raise InputError(None, f"unknown format {self.fmt!r}", f"choose one of {', '.join(FORMATS)}")
        if self.with_kspace and self.fmt != "h5":
            raise InputError(None, f"--with-kspace writes fastMRI HDF5, not {self.fmt}", "use --format h5")
        if self.coils < 1:
            raise InputError(None, f"--coils must be at least 1, got {self.coils}")


def write_fastmri_sample(path: Path, image: np.ndarray, opts: AugmentOptions, seed: int) -> None:
    """One fastMRI-layout file (one slice) with k-space simulated from ``image`` (float32 (H, W)).

    Layout as ``data_prep.h5_writer``: ``kspace`` (1, C, H, W) or (1, H, W), ``reconstruction_rss`` /
    ``reconstruction_esc`` (1, H, W), ``sens_maps`` for multi-coil, ``ismrmrd_header``, attrs ``max``/``norm``.
    """
    height, width = image.shape
    sim = simulate_kspace(image, opts.coils, np.random.default_rng(seed), snr_db=opts.snr_db)
    coil_images = ifft2c_np(sim.kspace.astype(np.complex128))
    multicoil = opts.coils > 1
    target = np.sqrt((np.abs(coil_images) ** 2).sum(0)) if multicoil else np.abs(coil_images)
    target = target.astype(np.float32)
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as hf:
        hf.create_dataset("kspace", data=sim.kspace[None])
        hf.create_dataset("reconstruction_rss" if multicoil else "reconstruction_esc", data=target[None])
        if sim.sens is not None:
            hf.create_dataset("sens_maps", data=sim.sens[None])
        fov = (height * VOXEL_MM, width * VOXEL_MM, VOXEL_MM)
        hf.create_dataset("ismrmrd_header", data=np.bytes_(build_header((height, width), (height, width), fov)))
        if opts.acceleration:
            # Fully sampled k-space (it must train recon models); the seeded mask pairs it with an input.
            mask = make_mask(MaskSpec("random", opts.acceleration), (height, width), seed % 2**31)[0]
            hf.create_dataset("sampling_mask", data=mask.numpy().astype(bool))
            hf.attrs["acceleration"] = opts.acceleration
            hf.attrs["center_fraction"] = default_center_fraction(opts.acceleration)
        hf.attrs.update({"acquisition": "AXT1", "max": float(target.max()), "norm": float(np.linalg.norm(target)),
                         "simulated": True, "synthetic": True, "seed": seed,
                         "simulation": json.dumps({"coils": opts.coils, "snr_db": opts.snr_db,
                                                   "model": "mridiff.data.simulate.simulate_kspace"})})


def write_sample(path: Path, image: np.ndarray, opts: AugmentOptions, seed: int) -> None:
    """Write one sample atomically in ``opts.fmt``; image float32 (H, W) normalised magnitude.

    An existing file is replaced: callers only write samples that are not recorded as finished.
    """
    if opts.with_kspace:
        write_fastmri_sample(path, image, opts, seed)
    elif opts.fmt == "nifti":
        write_nifti(path, volume_to_nifti_array(image[None]), np.diag([VOXEL_MM] * 3 + [1.0]),
                    overwrite=True, descrip="mridiff synthetic sample")
    elif opts.fmt == "png":
        pixels = np.round(np.clip(image / PNG_WHITE, 0.0, 1.0) * 65535).astype(np.uint16)
        with atomic_path(path, overwrite=True) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    else:
        with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as hf:
            hf.create_dataset("image", data=image.astype(np.float32))
            hf.attrs.update({"synthetic": True, "seed": seed})


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest (empty when the file does not exist)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and set(MANIFEST_FIELDS) - set(rows[0]):
        raise InputError(path, "not an mridiff augment manifest", "use a new --out directory")
    return rows


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the manifest atomically, rows sorted by sample index."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: int(r["index"])))
    atomic_write_text(path, buf.getvalue(), overwrite=True)


def _check_compatible(path: Path, rows: list[dict[str, str]], opts: AugmentOptions, sha256: str) -> None:
    """Refuse to continue a directory with settings other than those that produced it."""
    for row in rows:
        wanted = {"checkpoint_sha256": sha256, "steps": str(opts.steps), "mode": opts.mode, "format": opts.fmt,
                  "seed": str(sample_seed(opts.seed, int(row["index"])))}
        for key, value in wanted.items():
            if row[key] != value:
                shown = "seed (from --seed)" if key == "seed" else key
                raise InputError(path, f"was written with another {shown} ({row[key][:16]} vs {value[:16]})",
                                 "continue with the same settings or choose a new --out directory")


def augment_dir(out_dir: Path, gen: SampleGenerator, opts: AugmentOptions) -> dict[str, Any]:
    """Grow ``out_dir`` to ``opts.n`` samples; finished samples (in the manifest and on disk) are kept as they are.

    Sample files are written atomically, then the manifest is rewritten atomically after each batch, so an
    interrupted run loses at most one batch; unrecorded sample files from such a run are regenerated.

    Returns:
        ``{"written": new samples, "kept": samples already there, "manifest": path}``.

    Raises:
        InputError: bad options, an unwritable directory, or a directory written with other settings.

    """
    opts.validate()
    manifest = check_writable(out_dir / MANIFEST, overwrite=True)
    check_writable(out_dir / sample_name(0, opts.fmt), overwrite=True)  # creates and checks the sample folder
    rows = read_manifest(manifest)
    _check_compatible(manifest, rows, opts, gen.sha256)
    done: dict[int, dict[str, Any]] = {int(r["index"]): r for r in rows if (out_dir / r["file"]).is_file()}
    todo = [i for i in range(opts.n) if i not in done]
    bar = tqdm(total=len(todo), desc="samples", unit="sample", disable=not opts.progress or not todo)

    def run(chunk: Sequence[int]) -> list[dict[str, Any]]:
        seeds = [sample_seed(opts.seed, i) for i in chunk]
        images = gen.generate(seeds, opts.steps)
        new: list[dict[str, Any]] = []
        for i, seed, image in zip(chunk, seeds, images, strict=True):
            name = sample_name(i, opts.fmt)
            write_sample(out_dir / name, image, opts, seed)  # replaces an unrecorded file of an interrupted run
            new.append({"file": name, "index": i, "seed": seed, "checkpoint_sha256": gen.sha256,
                        "steps": opts.steps, "mode": opts.mode, "format": opts.fmt})
        done.update({int(r["index"]): r for r in new})
        write_manifest(manifest, list(done.values()))
        bar.update(len(chunk))
        return new

    written = run_chunked(todo, run, opts.batch)
    bar.close()
    return {"written": len(written), "kept": opts.n - len(todo), "total": len(done), "manifest": str(manifest)}


def list_samples(directory: Path) -> list[Path]:
    """Sample files of an augment directory, sorted by index.

    Taken from its manifest when present, else by name from ``directory/samples`` or ``directory`` itself.
    """
    rows = read_manifest(directory / MANIFEST)
    if rows:
        return [directory / r["file"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    folder = directory / SAMPLE_DIR if (directory / SAMPLE_DIR).is_dir() else directory
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))

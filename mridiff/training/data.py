"""Training data: lazy slice datasets over fastMRI-layout HDF5 files, and a Lightning datamodule.

Each item reads one slice (never a whole volume) and turns it into a normalised training pair through the
task module, drawing a fresh random mask every time so that masks are never memorised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from skimage.transform import resize
from torch.utils.data import DataLoader, Dataset, get_worker_info

from mridiff.config import RunConfig
from mridiff.data.augmentation import random_geometry, remap_intensity
from mridiff.data.fastmri_h5 import ScanInfo, open_scan, read_slice
from mridiff.data.simulate import simulate_kspace
from mridiff.errors import InputError
from mridiff.tasks.problem import Example, ExampleFn


def list_files(root: str | Path, list_file: str | None = None, challenge: str = "auto") -> list[Path]:
    """HDF5 files under ``root`` (or those named in ``list_file``), filtered by challenge.

    Raises:
        InputError: when the directory or list is missing or no file matches.

    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(base, "training data directory not found", "run `mridiff prepare default-dataset`")
    if list_file:
        lst = Path(list_file) if Path(list_file).is_absolute() else base / list_file
        try:
            names = [n.strip() for n in lst.read_text().splitlines() if n.strip()]
        except OSError:
            raise InputError(lst, "file list not found") from None
        files = [base / n for n in names]
    else:
        files = sorted(base.glob("*.h5"))
    if challenge != "auto":
        files = [f for f in files if open_scan(f).multicoil == (challenge == "multicoil")]
    if not files:
        raise InputError(base, "no HDF5 training files found")
    return files


def worker_generator(seed: int) -> np.random.Generator:
    """A random stream of its own for each (seed, DDP rank, loader worker), so no two processes repeat examples."""
    info = get_worker_info()
    worker = info.id if info is not None else 0
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    return np.random.default_rng([seed, rank, worker])


class SliceDataset(Dataset[Example]):
    """All slices of a list of fastMRI-layout files, each turned into an example by ``make_example``.

    Args:
        files: HDF5 files (fully sampled k-space).
        make_example: ``(kspace, sens_or_None, rng) -> dict of tensors``.
        seed: base seed; each worker and epoch derives its own stream.
        patch: optional random square crop applied to every image of an example (training only).

    """

    def __init__(self, files: list[Path], make_example: ExampleFn, seed: int = 0, patch: int | None = None) -> None:
        self.scans: list[ScanInfo] = [open_scan(f) for f in files]
        self.patch = patch
        self.index = [(i, s) for i, scan in enumerate(self.scans) for s in range(scan.num_slices)]
        self.make_example = make_example
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._calls = 0

    def __len__(self) -> int:
        return len(self.index)

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = worker_generator(self.seed)
        return self._rng

    def __getitem__(self, idx: int) -> Example:
        scan_idx, slice_idx = self.index[idx]
        scan = self.scans[scan_idx]
        data = read_slice(scan, slice_idx, with_sens=scan.multicoil)
        rng = self._generator()
        return random_crop(self.make_example(data.kspace, data.sens, rng), self.patch, rng)

    @property
    def image_size(self) -> list[int]:
        """The encoded matrix of the first training file."""
        return list(self.scans[0].encoded_size)


def random_crop(example: Example, patch: int | None, rng: np.random.Generator) -> Example:
    """The same random square crop of every image of an example.

    The problem is built on the full grid first, so the crop keeps the aliasing of the whole field of view, as at
    inference.
    """
    if patch is None:
        return example
    height, width = example["target"].shape[-2:]
    size_h, size_w = min(patch, height), min(patch, width)
    top, left = int(rng.integers(height - size_h + 1)), int(rng.integers(width - size_w + 1))
    return {k: v[..., top : top + size_h, left : left + size_w] for k, v in example.items()}


def resample(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` at ``size x size``: the mean of 2x2 blocks for an exact halving, else an anti-aliased resize."""
    h, w = img.shape
    if h == w == 2 * size:
        return img.reshape(size, 2, size, 2).mean(axis=(1, 3))
    return resize(img, (size, size), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


class ImageBankDataset(Dataset[Example]):
    """Training examples from an image bank of real magnitude slices, with k-space simulated on the fly.

    Each item takes one slice, optionally remaps its intensities and changes its geometry
    (:mod:`mridiff.data.augmentation`), simulates fully sampled k-space (smooth phase, a coil count drawn from
    ``coils``, noise at an SNR drawn from ``snr_db``) and hands it to the task's ``make_example``, so every epoch
    sees new phases, coil maps, noise, masks and contrasts.

    Args:
        path: HDF5 file with ``images`` (N, H, W) and attribute ``scale`` (the value of full white).
        make_example: ``(kspace, sens_or_None, rng) -> dict of tensors``.
        seed: base seed; each worker and rank derives its own stream.
        patch: optional random square crop after the problem is built.
        remap: random intensity remapping.
        geometry: random flips, rotation and zoom.
        coils: coil counts to draw from.
        snr_db: ``(low, high)`` SNR range in dB.
        size: resample the images to ``size x size`` first (``None``: as stored).
    """

    def __init__(self, path: str | Path, make_example: ExampleFn, seed: int = 0, patch: int | None = None, *,
                 remap: bool = False, geometry: bool = False, coils: tuple[int, ...] = (1, 8),
                 snr_db: tuple[float, float] = (25.0, 40.0), size: int | None = None) -> None:
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as fh:
                self.shape = tuple(int(v) for v in fh["images"].shape)
                self.scale = float(fh.attrs.get("scale", 1.0))
        except (OSError, KeyError):
            raise InputError(self.path, "not an image bank (HDF5 with an 'images' dataset)",
                             "make one with `mridiff prepare cheng`") from None
        self.make_example, self.seed, self.patch = make_example, seed, patch
        self.remap, self.geometry = remap, geometry
        self.coils, self.snr_db = tuple(coils), (float(snr_db[0]), float(snr_db[-1]))
        self.size = size
        self._file: h5py.File | None = None
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def image_size(self) -> list[int]:
        """The matrix of the training images (after ``size``)."""
        return [self.size, self.size] if self.size else list(self.shape[1:])

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = worker_generator(self.seed)
        return self._rng

    def __getstate__(self) -> dict[str, object]:
        """Pickle for loader workers without the open HDF5 handle (each worker opens its own)."""
        return {**self.__dict__, "_file": None}

    def __getitem__(self, idx: int) -> Example:
        if self._file is None:  # one read-only handle per process (each loader worker opens its own)
            self._file = h5py.File(self.path, "r")
        img = np.asarray(self._file["images"][idx], dtype=np.float32) / self.scale
        if self.size and img.shape != (self.size, self.size):
            img = resample(img, self.size)
        rng = self._generator()
        if self.geometry:
            img = random_geometry(img, rng)
        if self.remap:
            img = remap_intensity(img, rng)
        coils = int(self.coils[int(rng.integers(len(self.coils)))])
        snr = float(rng.uniform(*self.snr_db))
        sim = simulate_kspace(img, coils, rng, snr_db=snr)
        return random_crop(self.make_example(sim.kspace, sim.sens, rng), self.patch, rng)


class FixedExamples(Dataset[Example]):
    """A fixed, precomputed list of examples (validation: the same masks every time)."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, idx: int) -> Example:
        return self.examples[idx]


class SliceDataModule(pl.LightningDataModule):
    """Train/val loaders for a run config.

    Args:
        cfg: the run configuration.
        make_example: the task's example builder.

    """

    def __init__(self, cfg: RunConfig, make_example: ExampleFn) -> None:
        super().__init__()
        self.cfg = cfg
        self.make_example = make_example
        self.train_set: SliceDataset | ImageBankDataset | None = None
        self.val_set: FixedExamples | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the files (cheap: only headers and shapes are read)."""
        data = self.cfg.data
        files: list[Path] = []
        if data.images:
            self.train_set = ImageBankDataset(
                data.images, self.make_example, self.cfg.train.seed, data.patch, remap=data.intensity_remap,
                geometry=data.geometry, coils=tuple(data.sim_coils), snr_db=(data.sim_snr_db[0], data.sim_snr_db[-1]),
                size=data.image_size)
        else:
            files = list_files(data.root, data.train_list, data.challenge)
            for extra in data.extra_roots:
                files += list_files(extra, None, data.challenge)
            self.train_set = SliceDataset(files, self.make_example, self.cfg.train.seed, data.patch)
        if data.val_root or data.val_list:
            val_files = list_files(data.val_root or data.root, data.val_list, data.challenge)
        elif files:
            val_files = files[-1:]
        else:
            raise InputError(data.images or "", "an image bank needs data.val_root for validation")
        val_source = SliceDataset(val_files, self.make_example, seed=12345)
        n = len(val_source)
        picks = np.linspace(n // 4, 3 * n // 4, max(1, self.cfg.train.val_slices)).astype(int)
        self.val_set = FixedExamples([val_source[int(i)] for i in picks])

    def train_dataloader(self) -> DataLoader[Any]:
        """Shuffled training loader."""
        assert self.train_set is not None
        workers = self.cfg.train.num_workers
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.train.batch_size,
            shuffle=True,
            drop_last=len(self.train_set) >= self.cfg.train.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def validation_batch(self) -> Example:
        """The fixed validation examples, collated into one batch (the same masks every time)."""
        assert self.val_set is not None
        return {k: torch.stack([ex[k] for ex in self.val_set.examples]) for k in self.val_set.examples[0]}

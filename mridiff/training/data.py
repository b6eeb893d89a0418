"""Training data: lazy slice datasets over fastMRI-layout HDF5 files, and a Lightning datamodule.

Each item reads one slice (never a whole volume) and turns it into a normalised training pair through the
task module, drawing a fresh random mask every time so that masks are never memorised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from mridiff.config import RunConfig
from mridiff.data.fastmri_h5 import ScanInfo, open_scan, read_slice
from mridiff.errors import InputError

Example = dict[str, torch.Tensor]
ExampleFn = Callable[[np.ndarray, "np.ndarray | None", np.random.Generator], Example]


def list_files(root: str | Path, list_file: str | None = None, challenge: str = "auto") -> list[Path]:
    """HDF5 files under ``root`` (or those named in ``list_file``), filtered by challenge.

    Raises:
        InputError: when the directory or list is missing or no file matches.

    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(base, "training data directory not found", "run `python -m data_prep.make_default_dataset`")
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
            info = get_worker_info()
            worker = info.id if info is not None else 0
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self._rng = np.random.default_rng([self.seed, rank, worker])
        return self._rng

    def __getitem__(self, idx: int) -> Example:
        scan_idx, slice_idx = self.index[idx]
        scan = self.scans[scan_idx]
        data = read_slice(scan, slice_idx)
        sens = None
        if scan.multicoil:
            with h5py.File(scan.path, "r") as fh:
                if "sens_maps" in fh:
                    sens = np.asarray(fh["sens_maps"][slice_idx])
        rng = self._generator()
        example = self.make_example(data.kspace, sens, rng)
        if self.patch is None:
            return example
        # The same random crop of every image of the example (the problem is built on the full grid first).
        height, width = example["target"].shape[-2:]
        size_h, size_w = min(self.patch, height), min(self.patch, width)
        top, left = int(rng.integers(height - size_h + 1)), int(rng.integers(width - size_w + 1))
        return {k: v[..., top : top + size_h, left : left + size_w] for k, v in example.items()}


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
        self.train_set: SliceDataset | None = None
        self.val_set: FixedExamples | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the files (cheap: only headers and shapes are read)."""
        data = self.cfg.data
        files = list_files(data.root, data.train_list, data.challenge)
        for extra in data.extra_roots:
            files += list_files(extra, None, data.challenge)
        self.train_set = SliceDataset(files, self.make_example, self.cfg.train.seed, data.patch)
        if data.val_root or data.val_list:
            val_files = list_files(data.val_root or data.root, data.val_list, data.challenge)
        else:
            val_files = files[-1:]
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

"""Synthetic slices from the unconditional (augmentation) model: batched and seeded per sample.

    from mridiff.inference.generate import SampleGenerator, sample_seed
    gen = SampleGenerator()                                 # bundled model, or SampleGenerator("model.safetensors")
    images = gen.generate([sample_seed(0, i) for i in range(8)], steps=50)   # float32 (8, H, W)

Sample ``i`` of a run with base seed ``b`` starts from noise drawn with ``sample_seed(b, i)`` and is sampled with
deterministic DDIM (eta = 0), so it is the same image whatever batch it runs in and whichever run (or ``torchrun``
rank) produces it. The restartable directory workflow (``mridiff augment``) is :mod:`mridiff.workflows.augment`.

Images are normalised magnitudes: the training slices were divided by their 99th percentile, so generated
slices have a 99th percentile near 1. Negative values (noise around the zero background) are clipped to 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mridiff.diffusion.noise import noise_seed
from mridiff.diffusion.samplers import SamplerName
from mridiff.inference.model import LoadedModel, load_model
from mridiff.inference.options import SamplingOptions
from mridiff.inference.pipeline import Batch, ChunkFn, Pipeline
from mridiff.physics.consistency import DCMode
from mridiff.tasks.augment import generation_problem


def sample_seed(base_seed: int, index: int) -> int:
    """Return the noise seed of sample ``index`` in a run with ``base_seed`` (independent streams per sample)."""
    return noise_seed(base_seed, index)


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

    def generate(self, seeds: Sequence[int], steps: int = 50, progress: bool = False,
                 batch_size: int | None = None, on_chunk: ChunkFn | None = None) -> np.ndarray:
        """Draw one sample per seed with deterministic DDIM.

        Args:
            seeds: per-sample noise seeds (see :func:`sample_seed`); sample ``i`` depends on ``seeds[i]`` alone.
            steps: DDIM steps (NFE per sample).
            progress: show a progress bar over network calls.
            batch_size: samples per batch (default: all at once); halves on GPU out-of-memory.
            on_chunk: called with the positions in ``seeds`` and the images of each finished batch.

        Returns:
            float32 ``(len(seeds), H, W)`` non-negative normalised magnitudes.

        """
        opts = SamplingOptions(steps=steps, sampler=SamplerName.DDIM, dc=DCMode.NONE,
                               batch_size=batch_size or max(len(seeds), 1), progress=progress)
        shape = self.image_size

        def build(idx: Sequence[int]) -> Batch:
            return Batch(generation_problem(len(idx), shape), seeds=[int(seeds[i]) for i in idx])

        return Pipeline(self.model, opts).run(range(len(seeds)), build, desc="augment", on_chunk=on_chunk).mean

"""The one sampling pipeline behind reconstruction, super-resolution and augmentation.

It is the only place with timing, progress, GPU out-of-memory halving, repeat-by-K and rescaling. A facade
hands it slice indices and a function that builds the normalised :class:`InverseProblem` of any chunk of them;
it returns the magnitude mean and std over K samples per slice, in the input's units.

Reproducibility: the noise of sample k of slice i comes from the stream ``(seed, i, k)`` alone (x_T and every
later step), and on the CPU the network is called one sample at a time (oneDNN picks other kernels for other
batch sizes, which changes the last bits; on one core a batched call is no faster). So any batch size, or
halving it after an out-of-memory error, gives bit-identical CPU results.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mridiff.diffusion.loop import Denoiser, reverse_diffusion
from mridiff.diffusion.noise import SampleNoise, noise_seed
from mridiff.inference.calibration import Interval
from mridiff.inference.model import LoadedModel
from mridiff.inference.options import Precision, SamplingOptions
from mridiff.tasks.problem import InverseProblem
from mridiff.utils import per_sample


@dataclass
class Batch:
    """What a facade builds for a chunk of slices.

    Attributes:
        problem: the normalised problems, one per slice (before repeating by K).
        baseline: the classical answer per slice (zero-filled, sinc-interpolated), real ``(B, H, W)`` in input
            units, or ``None``.
        seeds: the seed of each noise stream, K per slice in order (default: ``noise_seed(seed, slice index,
            sample index)``); augmentation passes its per-sample seeds.

    """

    problem: InverseProblem
    baseline: torch.Tensor | None = None
    seeds: Sequence[int] | None = None


@dataclass
class SamplingResult:
    """Sampled slices, magnitudes in the input's units, on the full grid (crop for display and metrics).

    Attributes:
        mean: mean magnitude over K samples, float32 ``(S, H, W)``.
        std: per-pixel std of the magnitude over samples (zeros for K = 1), float32 ``(S, H, W)``.
        baseline: the classical answer: zero-filled magnitude (RSS over coils for multi-coil) for reconstruction,
            the sinc-interpolated image for super-resolution; zeros for augmentation. float32 ``(S, H, W)``.
        nfe: network evaluations per sample.
        seconds_per_slice: wall-clock seconds per slice, all samples included.
        interval: reconstruction with K > 1 and a calibration entry for the mode in the model: the calibrated
            interval (:class:`~mridiff.inference.calibration.Interval`), else ``None``. It covers the truth for at
            least ``level`` of object pixels, marginally over scans exchangeable with the calibration scans (same
            kind of anatomy, contrast, noise, acceleration and mask); not for a single pixel, nor for scans unlike
            the calibration data.
        calibration: how the interval was made (mode key, level, quantile, calibration slices), or why there is
            none (``{"status": "uncalibrated", ...}``); ``None`` for K = 1 and other tasks.

    """

    mean: np.ndarray
    std: np.ndarray
    baseline: np.ndarray
    nfe: int
    seconds_per_slice: float
    interval: Interval | None = None
    calibration: dict[str, Any] | None = None

    @property
    def zero_filled(self) -> np.ndarray:
        """The baseline of a reconstruction: the zero-filled magnitude."""
        return self.baseline

    @property
    def sinc(self) -> np.ndarray:
        """The baseline of super-resolution: the sinc-interpolated (zero-padded k-space) magnitude."""
        return self.baseline


BuildFn = Callable[[Sequence[int]], Batch]
ChunkFn = Callable[[list[int], np.ndarray], None]


def _per_sample_calls(net: Denoiser) -> Denoiser:
    """``net`` called on one sample at a time (see the module docstring: bit-identical CPU results)."""

    def call(x_t: torch.Tensor, cond: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(x_t[i : i + 1], None if cond is None else cond[i : i + 1], t[i : i + 1])
                          for i in range(x_t.shape[0])])

    return call


def _bf16_calls(net: Denoiser, device: torch.device) -> Denoiser:
    """``net`` under bfloat16 autocast; its output back in the state's dtype, so the loop stays in fp32."""

    def call(x_t: torch.Tensor, cond: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = net(x_t, cond, t)
        return out.to(x_t.dtype)

    return call


def _warn(message: str) -> None:
    # A RuntimeWarning (catchable by API users); the CLI prints warnings with tqdm.write, above the bar.
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class Pipeline:
    """Sampling with one loaded model and one set of options.

    Args:
        model: the network, its schedule and metadata.
        opts: sampler, data consistency, K, seed, batch size, progress.

    """

    def __init__(self, model: LoadedModel, opts: SamplingOptions) -> None:
        self.model = model
        self.opts = opts
        self.nfe = opts.make_sampler(model.schedule).num_steps  # checks the step count before any work

    def run(self, indices: Sequence[int], build: BuildFn, desc: str = "sampling",
            on_chunk: ChunkFn | None = None) -> SamplingResult:
        """Sample every slice of ``indices`` in chunks of ``batch_size`` (halved on GPU out-of-memory).

        Args:
            indices: slice indices (they key the noise); ``build`` receives chunks of them.
            build: the problems (and baselines) of a chunk of slices.
            desc: progress-bar label.
            on_chunk: called with each finished chunk's indices and mean magnitudes ``(B, H, W)`` (to write
                results as they come).

        Returns:
            One row per index, in order.

        Raises:
            torch.cuda.OutOfMemoryError: if even one slice does not fit.

        """
        opts = self.opts
        start = time.perf_counter()
        size = max(1, opts.batch_size)
        bar = tqdm(total=self.nfe * math.ceil(len(indices) / size), desc=desc, unit="call",
                   disable=not opts.progress, leave=False)
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        done = 0
        try:
            while done < len(indices):
                chunk = list(indices[done : done + size])
                calls = bar.n
                try:
                    new = self._chunk(chunk, build, bar.update)
                except torch.cuda.OutOfMemoryError:
                    if size == 1:
                        raise
                    size = max(1, size // 2)
                    _warn(f"GPU out of memory; retrying with a batch of {size} slices")
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    bar.n = calls  # the failed chunk's calls are redone
                    bar.total = calls + self.nfe * math.ceil((len(indices) - done) / size)
                    bar.refresh()
                    continue
                rows.extend(new)
                if on_chunk is not None:
                    on_chunk(chunk, np.stack([r[0] for r in new]))
                done += len(chunk)
        finally:
            bar.close()
        elapsed = time.perf_counter() - start
        mean, std, base = (np.stack([r[j] for r in rows]).astype(np.float32) for j in range(3))
        return SamplingResult(mean=mean, std=std, baseline=base, nfe=self.nfe,
                              seconds_per_slice=elapsed / max(len(indices), 1))

    def draw(self, chunk: Sequence[int], build: BuildFn,
             on_step: Callable[[], Any] | None = None) -> tuple[torch.Tensor, Batch]:
        """K samples of each slice of one chunk (no out-of-memory halving), in the input's units.

        Returns:
            The samples, complex64 ``(B, K, H, W)`` (float32 for a real-valued network) on the CPU, and the chunk's
            :class:`Batch`.

        """
        opts, model = self.opts, self.model
        batch = build(chunk)
        k = opts.samples
        seeds = batch.seeds if batch.seeds is not None else [noise_seed(opts.seed, i, s) for i in chunk
                                                              for s in range(k)]
        noise = SampleNoise(seeds)
        problem = batch.problem.repeat(k).to(model.device)
        assert problem.image_shape is not None
        dtype = torch.complex64 if model.net.config.state_channels == 2 else torch.float32
        x_init = noise.draw(torch.zeros(len(chunk) * k, *problem.image_shape, dtype=dtype, device=model.device))
        net: Denoiser = model.net if model.device.type != "cpu" else _per_sample_calls(model.net)
        if opts.precision == Precision.BF16:
            net = _bf16_calls(net, model.device)
        out = reverse_diffusion(net, model.schedule, opts.make_sampler(model.schedule), problem, opts.consistency(),
                                x_init, noise=noise, on_step=on_step).cpu()
        out = out * per_sample(problem.scale.cpu().to(out.real.dtype), out)
        return out.reshape(len(chunk), k, *out.shape[-2:]), batch

    def _chunk(self, chunk: list[int], build: BuildFn,
               on_step: Callable[[], Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Sample one chunk and reduce it to the magnitude mean and std over K per slice."""
        out, batch = self.draw(chunk, build, on_step)
        mags = (out.abs() if out.is_complex() else out.clamp_min(0.0)).float()
        std = mags.std(dim=1, unbiased=False) if mags.shape[1] > 1 else torch.zeros_like(mags[:, 0])
        base = batch.baseline if batch.baseline is not None else torch.zeros_like(mags[:, 0])
        mean = mags.mean(dim=1)
        return [(mean[i].numpy(), std[i].numpy(), base[i].float().cpu().numpy()) for i in range(len(chunk))]

"""Regenerate ``recon_ddim5.npy`` (run when the bundled reconstruction model changes, and say so in the commit).

    python scripts/bundle_model.py training_state/recon_real.safetensors --name recon   # replaces the bundled model
    OMP_NUM_THREADS=1 python -m tests.golden.make_golden
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from mridiff.inference.reconstruct import Reconstructor
from mridiff.physics.fft import fft2c
from mridiff.physics.masks import MaskSpec, make_mask

GOLDEN = Path(__file__).with_name("recon_ddim5.npy")


def golden_input() -> tuple[np.ndarray, torch.Tensor]:
    """One bundled Colin27 slice as noiseless single-coil k-space (128x128), and a seeded 4x random mask."""
    with np.load(str(resources.files("mridiff") / "data" / "demo_colin27.npz")) as demo:
        image = torch.from_numpy(demo["images"][:1].astype(np.float32)).to(torch.complex64)
    return fft2c(image).numpy(), make_mask(MaskSpec("random", 4), (128, 128), seed=0)


def golden_output(rec: Reconstructor) -> np.ndarray:
    """5 DDIM steps with hard data consistency, seed 0: the magnitude (1, 128, 128)."""
    kspace, mask = golden_input()
    return rec.reconstruct(kspace, mask, steps=5, sampler="ddim", dc="hard", seed=0).mean


if __name__ == "__main__":
    np.save(GOLDEN, golden_output(Reconstructor(device="cpu")).astype(np.float32))
    print(f"wrote {GOLDEN}")

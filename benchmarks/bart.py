"""BART's ``pics`` (Uecker et al.) as a compressed-sensing peer, through its command-line tool and .cfl files.

BART is not a Python dependency: install the Debian package (``apt-get install bart``, see
``benchmarks/README.md``); :func:`bart_available` tells whether it is on the PATH, and the benchmarks skip the
row with a message when it is not. k-space is centred as in fastMRI (``fft2c``), which is BART's convention too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def bart_available() -> bool:
    """Whether the ``bart`` command is installed."""
    return shutil.which("bart") is not None


def write_cfl(stem: Path, array: np.ndarray) -> None:
    """Write ``stem.hdr`` / ``stem.cfl`` (complex64, column-major, as BART stores arrays)."""
    dims = list(array.shape) + [1] * (16 - array.ndim)
    stem.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in dims) + "\n")
    np.asarray(array, dtype=np.complex64).flatten(order="F").tofile(stem.with_suffix(".cfl"))


def read_cfl(stem: Path) -> np.ndarray:
    """Read a BART array written by :func:`write_cfl` or by ``bart``."""
    lines = stem.with_suffix(".hdr").read_text().splitlines()
    dims = [int(d) for d in lines[1].split()]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    data = np.fromfile(stem.with_suffix(".cfl"), dtype=np.complex64)
    return data.reshape(dims, order="F")


def bart_pics(kspace: np.ndarray, sens: np.ndarray | None, lam: float, iters: int = 100,
              regulariser: str = "wavelet") -> np.ndarray:
    """Reconstruct one slice with ``bart pics``.

    Args:
        kspace: undersampled k-space, zeros where not measured: (H, W) single-coil or (C, H, W) multi-coil.
        sens: coil maps (C, H, W) for multi-coil, ``None`` for single-coil (maps of ones).
        lam: regularisation weight.
        iters: iterations.
        regulariser: ``"wavelet"`` (``-R W:3:0:lam``) or ``"tv"`` (``-R T:3:0:lam``).

    Returns:
        The complex image (H, W).

    Raises:
        RuntimeError: if bart is missing or fails (its message included).
    """
    if not bart_available():
        raise RuntimeError("bart is not installed (apt-get install bart)")
    ks = kspace[None] if kspace.ndim == 2 else kspace
    maps = np.ones_like(ks) if sens is None else sens
    # BART dimensions: (X, Y, Z, coils)
    ks_b = np.transpose(ks, (1, 2, 0))[:, :, None, :]
    maps_b = np.transpose(maps, (1, 2, 0))[:, :, None, :]
    reg = {"wavelet": "W", "tv": "T"}[regulariser]
    with tempfile.TemporaryDirectory(prefix="mridiff-bart-") as tmp:
        root = Path(tmp)
        write_cfl(root / "ksp", ks_b)
        write_cfl(root / "sens", maps_b)
        cmd = ["bart", "pics", "-d0", "-S", "-i", str(iters), "-R", f"{reg}:3:0:{lam}",
               str(root / "ksp"), str(root / "sens"), str(root / "out")]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"bart pics failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return read_cfl(root / "out").reshape(ks.shape[-2:])

"""Write simulated fastMRI-layout HDF5 files from prepared magnitude slices.

Layout written (what ``fastmri.data.SliceDataset`` reads):

* single-coil (``coils`` 0 or 1): ``kspace`` complex64 ``(S, H, W)`` and ``reconstruction_esc`` float32 ``(S, H, W)``
  = ``|ifft2c(kspace)|``;
* multi-coil: ``kspace`` complex64 ``(S, C, H, W)``, ``reconstruction_rss`` float32 ``(S, H, W)`` = RSS of the coil
  images ``ifft2c(kspace)``, and the simulated ``sens_maps`` complex64 ``(S, C, H, W)`` (fastMRI ignores it);
* ``ismrmrd_header`` XML (fully sampled: no phase-encode padding); attrs ``max`` and ``norm`` of the target volume as
  in fastMRI, ``acquisition``, ``simulated=True``, ``simulation`` (JSON description), ``source_volume``,
  ``source_slice_index``, ``intensity_scale``. Never any patient field.

Targets come from the stored (noisy) k-space, as fastMRI's come from the fully sampled acquisition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mridiff.data.ismrmrd import build_header
from mridiff.data.simulate import ifft2c_np, simulate_kspace
from mridiff.io.atomic import atomic_path

PHASE_MODEL = "random 2nd-order polynomial phase, peak |phase| in [pi/4, pi/2] rad, drawn per slice"
COIL_MODEL = (
    "loop coils on a circle of radius 1.3 x half-FOV, magnitude (d^2 + a^2)^-1.5 with a in [0.5, 0.8] x half-FOV, "
    "random phase offset + linear ramp, normalised to sum |S|^2 = 1, drawn per slice"
)


@dataclass(frozen=True)
class SimulationSpec:
    """How the k-space of a scan is simulated.

    Attributes:
        coils: 0 or 1 for single-coil, C > 1 for multi-coil.
        seed: Base seed; slice ``i`` of the source volume uses ``default_rng([seed, i])``.
        snr_db: SNR of white complex Gaussian k-space noise, or ``None`` for none.
        acquisition: fastMRI ``acquisition`` attribute (e.g. ``"AXT1"``).

    """

    coils: int = 8
    seed: int = 0
    snr_db: float | None = None
    acquisition: str = "AXT1"

    @property
    def multicoil(self) -> bool:
        """Whether the output uses the multi-coil layout."""
        return self.coils > 1

    def describe(self) -> dict[str, object]:
        """A JSON-serialisable description stored in the file's ``simulation`` attribute."""
        return {
            "simulated": True,
            "note": "k-space simulated from a magnitude image; not an MRI acquisition",
            "coils": max(self.coils, 1),
            "seed": self.seed,
            "per_slice_seed": "numpy default_rng([seed, source_slice_index])",
            "phase": PHASE_MODEL,
            "coil_maps": COIL_MODEL if self.multicoil else "none (single-coil)",
            "noise": (
                "none"
                if self.snr_db is None
                else f"white complex Gaussian, SNR {self.snr_db} dB = mean k-space power / noise variance"
            ),
            "fft": "centred orthonormal 2D FFT (fastmri.fft2c convention)",
            "target": "RSS of coil images" if self.multicoil else "magnitude of the inverse FFT (ESC-like)",
        }


def write_simulated_scan(
    out: str | Path,
    images: np.ndarray,
    source_indices: np.ndarray,
    spec: SimulationSpec,
    *,
    fov_mm: tuple[float, float, float],
    source_volume: str,
    intensity_scale: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Simulate k-space for each slice and write one fastMRI-layout file atomically.

    Args:
        out: Output ``.h5`` path.
        images: float32 ``(S, H, W)`` non-negative magnitude slices, in the order they are stored.
        source_indices: ``(S,)`` index of each slice in the source volume (seeds the simulation).
        spec: The simulation settings.
        fov_mm: ``(rows, cols, thickness)`` field of view in mm of one slice.
        source_volume: Name of the source volume (a file stem, no directory), kept for provenance and splits.
        intensity_scale: The factor the source intensities were divided by.
        overwrite: Replace an existing output.

    Returns:
        The written path.

    """
    images = np.asarray(images, dtype=np.float32)
    num, h, w = images.shape
    coils = max(spec.coils, 1)
    ks_shape: tuple[int, ...] = (num, coils, h, w) if spec.multicoil else (num, h, w)
    target_key = "reconstruction_rss" if spec.multicoil else "reconstruction_esc"
    with atomic_path(out, overwrite) as tmp, h5py.File(tmp, "w") as hf:
        ks = hf.create_dataset("kspace", shape=ks_shape, dtype=np.complex64, chunks=(1, *ks_shape[1:]))
        tgt = hf.create_dataset(target_key, shape=(num, h, w), dtype=np.float32, chunks=(1, h, w))
        sens_ds = None
        if spec.multicoil:
            sens_ds = hf.create_dataset("sens_maps", shape=ks_shape, dtype=np.complex64, chunks=(1, *ks_shape[1:]))
        vmax, sumsq = 0.0, 0.0
        for j in range(num):
            rng = np.random.default_rng([spec.seed, int(source_indices[j])])
            sim = simulate_kspace(images[j], spec.coils, rng, snr_db=spec.snr_db)
            coil_images = ifft2c_np(sim.kspace.astype(np.complex128))
            if spec.multicoil:
                target = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=0))
            else:
                target = np.abs(coil_images)
            target32 = target.astype(np.float32)
            ks[j] = sim.kspace
            tgt[j] = target32
            if sens_ds is not None and sim.sens is not None:
                sens_ds[j] = sim.sens
            vmax = max(vmax, float(target32.max()))
            sumsq += float(np.sum(target32.astype(np.float64) ** 2))
        hf.create_dataset(
            "ismrmrd_header", data=np.bytes_(build_header((h, w), (h, w), (fov_mm[0], fov_mm[1], fov_mm[2])))
        )
        hf.attrs["acquisition"] = spec.acquisition
        hf.attrs["max"] = vmax
        hf.attrs["norm"] = float(np.sqrt(sumsq))
        hf.attrs["simulated"] = True
        hf.attrs["simulation"] = json.dumps(spec.describe(), sort_keys=True)
        hf.attrs["source_volume"] = source_volume
        hf.attrs["source_slice_index"] = np.asarray(source_indices, dtype=np.int32)
        hf.attrs["intensity_scale"] = float(intensity_scale)
    return Path(out)

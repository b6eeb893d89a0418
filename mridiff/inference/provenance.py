"""What ``metrics.json`` records so that a result can be traced and repeated.

* :func:`run_provenance`: the model file and its SHA-256, the versions of mridiff, PyTorch, fastMRI and NumPy, and
  the device;
* :func:`mask_summary`: the mask actually used for a file, measured from the mask itself (acceleration, centre
  fraction), for a file's own mask as well as for a retrospective one;
* :func:`aggregate`: mean and standard deviation of every metric over all files, per method, as
  ``fastmri/evaluate.py`` reports them (sample standard deviation, ``ddof=1``).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from mridiff.inference.model import LoadedModel
from mridiff.physics.masks import MaskSpec

METHODS = ("mridiff", "zero_filled")
VERSIONED = ("mridiff", "torch", "fastmri", "numpy", "h5py", "scikit-image")


def software_versions() -> dict[str, str | None]:
    """Installed versions of mridiff and the libraries that shape its numbers (``None`` when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["torch"] = str(torch.__version__)  # with the build tag, e.g. 2.4.1+cu121
    out["cuda"] = torch.version.cuda
    return out


def run_provenance(model: LoadedModel) -> dict[str, Any]:
    """The model (file, SHA-256 as checked at load, task, training steps), software versions and device."""
    meta = model.meta
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    return {
        "model": {"path": str(model.path.resolve()), "sha256": meta.get("sha256"), "task": meta.get("task"),
                  "global_step": (training or {}).get("global_step")},
        "versions": software_versions(),
        "device": str(model.device),
    }


def _central_run(line: np.ndarray, centre: int) -> int:
    """Length of the run of sampled entries of ``line`` that contains ``centre`` (0 when the centre is empty)."""
    if not line[centre]:
        return 0
    lo = centre
    while lo > 0 and line[lo - 1]:
        lo -= 1
    hi = centre
    while hi < line.size - 1 and line[hi + 1]:
        hi += 1
    return hi - lo + 1


def mask_summary(mask: np.ndarray, source: str, spec: MaskSpec | None = None) -> dict[str, Any]:
    """Describe the mask used for a file, measured from the mask (H, W) itself.

    ``acceleration`` is ``H*W / sampled`` (for a 1D mask: ``W / lines``); ``center_fraction`` is the width of the
    contiguous block of sampled columns around the DC column, over W (for a 2D mask: the block along the DC row),
    which is how fastMRI's mask functions and :class:`~mridiff.physics.masks.MaskSpec` define it. A retrospective
    mask also records what was asked for (``kind``, ``nominal_acceleration``, ``nominal_center_fraction``).

    Args:
        mask: The sampling mask, 0/1, (H, W) as used (1D masks broadcast along rows).
        source: ``"file"`` (the file's own mask) or ``"retrospective"``.
        spec: The spec a retrospective mask was drawn from.

    """
    m = np.asarray(mask) != 0
    h, w = m.shape[-2:]
    one_d = bool(np.all(m == m[:1]))
    sampled = int(m.sum())
    centre_cols = _central_run(m[h // 2], w // 2)
    out: dict[str, Any] = {
        "source": source, "shape": [int(h), int(w)], "dims": "1D" if one_d else "2D",
        "acceleration": round(float(h * w / max(sampled, 1)), 4),
        "center_fraction": round(centre_cols / w, 4),
    }
    if one_d:
        out["lines"] = int(m[0].sum())
        out["center_lines"] = centre_cols
    else:
        out["sampled"] = sampled
        out["center_block"] = [_central_run(m[:, w // 2], h // 2), centre_cols]
    if spec is not None:
        out.update({"kind": spec.kind, "nominal_acceleration": spec.acceleration,
                    "nominal_center_fraction": spec.fraction})
    return out


def _mean_sd(values: list[float]) -> dict[str, Any]:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return {"mean": None, "sd": None, "n": 0}
    from runstats import Statistics  # fastMRI's own running statistics: the same numbers as fastmri.evaluate

    stats = Statistics(finite)
    return {"mean": float(stats.mean()), "sd": float(stats.stddev()) if len(finite) > 1 else None, "n": len(finite)}


def aggregate(entries: list[dict[str, Any]], methods: Sequence[str] = METHODS) -> dict[str, Any]:
    """Mean and sample standard deviation (``ddof=1``, as fastMRI's evaluate) of each metric over files, per method.

    Files without metrics (no ground truth, or a metrics error) are left out; ``n`` says how many counted.
    ``settings_differ`` flags entries made with different models or settings (earlier runs into the same
    ``--out``), whose mean mixes them. ``methods`` are the entry keys that hold metrics (super-resolution:
    ``mridiff``, ``sinc``, ``bicubic``).
    """
    out: dict[str, Any] = {}
    for method in methods:
        per_metric: dict[str, list[float]] = {}
        for e in entries:
            for name, value in (e.get(method) or {}).items():
                if isinstance(value, int | float):
                    per_metric.setdefault(name, []).append(float(value))
        if per_metric:
            out[method] = {name: _mean_sd(vals) for name, vals in sorted(per_metric.items())}
    keys = {(str((e.get("provenance") or {}).get("model", {}).get("sha256")), str(e.get("settings")))
            for e in entries}
    out["files"] = len(entries)
    out["settings_differ"] = len(keys) > 1
    return out


MASK_OPTIONS = ("acceleration", "center_fraction", "mask_type")
SETTINGS = ("seed", "sampler", "steps", "dc", "samples", "sens_method", "noise_std", "batch_size")


def file_record(options: dict[str, Any], mask: np.ndarray, spec: MaskSpec | None) -> dict[str, Any]:
    """The ``mask``, ``settings`` and ``options`` parts of a file's ``metrics.json`` entry.

    Args:
        options: The run's options (``ReconOptions`` as a dict).
        mask: The mask actually used (H, W).
        spec: The retrospective mask's spec, or ``None`` for a file that carried its own mask.

    Returns:
        ``mask``: :func:`mask_summary`; ``settings``: what determines the result besides the model and the mask
        (seed, sampler, steps, data consistency, K samples, coil-map method, noise std, batch size); ``options``:
        the flags, with the centre fraction resolved, and without the retrospective-mask flags when the file's own
        mask was used (they did not apply).

    """
    opts = dict(options)
    if spec is None:
        for key in MASK_OPTIONS:
            opts.pop(key, None)
    else:
        opts["center_fraction"] = spec.fraction
    return {"mask": mask_summary(mask, "retrospective" if spec is not None else "file", spec),
            "settings": {key: options.get(key) for key in SETTINGS}, "options": opts}

"""Sanitising HDF5 file attributes: keep what is safe to pass on, never anything that may identify a person.

fastMRI files carry a few numeric attributes (``max``, ``norm``, ``acceleration``...) and ``acquisition``; other
files may carry more. Only whitelisted keys and numeric values survive, and a key that mentions a patient, name,
birth, id, date, physician (and a few more) is always dropped, whatever its value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Attribute keys kept whatever their type; anything else is kept only when numeric.
SAFE_ATTR_KEYS = frozenset(
    {
        "acquisition",
        "max",
        "norm",
        "acceleration",
        "center_fraction",
        "num_low_frequency",
        "simulated",
        "simulation",
        "source_volume",
        "intensity_scale",
    }
)
# A key containing any of these is dropped, even if numeric: it may identify a person or a visit.
FORBIDDEN_KEY_PARTS = (
    "patient",
    "name",
    "birth",
    "id",
    "date",
    "physician",
    "subject",
    "institution",
    "accession",
    "operator",
    "referring",
    "address",
    "time",
)
FORBIDDEN_KEY_TOKENS = frozenset({"age", "sex", "weight", "height", "dob"})
_MAX_ATTR_ARRAY = 4096


def _is_forbidden(key: str) -> bool:
    low = key.lower()
    if any(part in low for part in FORBIDDEN_KEY_PARTS):
        return True
    tokens = "".join(ch if ch.isalnum() else " " for ch in low).split()
    return any(tok in FORBIDDEN_KEY_TOKENS for tok in tokens)


def _to_python(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in value.ravel()]
        return value.copy()
    return value


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= _MAX_ATTR_ARRAY


def sanitise_attrs(attrs: Any) -> dict[str, Any]:
    """Keep only attributes that are safe to pass on: whitelisted keys and numeric values, never identifiers.

    Args:
        attrs: A mapping such as ``h5py.File.attrs``.

    Returns:
        A plain dict with Python / numpy values; keys naming a patient, date, id etc. are always dropped.

    """
    out: dict[str, Any] = {}
    for key in attrs.keys():
        name = str(key)
        if _is_forbidden(name):
            continue
        try:
            value = attrs[key]
        except (OSError, TypeError, ValueError):
            continue
        if name in SAFE_ATTR_KEYS or _is_numeric(value):
            out[name] = _to_python(value)
    return out

"""Where the bundled models live inside the installed package (no torch needed to find them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODELS: dict[str, str] = {"recon": "recon.safetensors", "sr": "sr_x2.safetensors",
                                  "augment": "augment.safetensors"}


def default_model_path(task: str) -> Path:
    """The bundled model for ``task`` (``recon``, ``sr`` or ``augment``)."""
    return Path(str(resources.files("mridiff") / "weights" / DEFAULT_MODELS[task]))

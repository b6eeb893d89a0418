"""mridiff: conditional diffusion models for MRI reconstruction, super-resolution and augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mridiff.inference.reconstruct import Reconstructor

__all__ = ["Reconstructor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import mridiff` stays cheap (torch and monai load only when the API is used).
    if name == "Reconstructor":
        from mridiff.inference.reconstruct import Reconstructor

        return Reconstructor
    raise AttributeError(name)

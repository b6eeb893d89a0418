"""The denoising network. ``UNetConfig`` imports no torch; the network itself loads on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mridiff.models.config import UNetConfig

if TYPE_CHECKING:
    from mridiff.models.unet import ConditionalUNet, channels_to_complex, complex_to_channels

__all__ = ["ConditionalUNet", "UNetConfig", "channels_to_complex", "complex_to_channels"]


def __getattr__(name: str) -> Any:
    # Lazy: `mridiff.config` types its model section with UNetConfig, and must not pull in torch and MONAI.
    if name in ("ConditionalUNet", "channels_to_complex", "complex_to_channels"):
        from mridiff.models import unet

        return getattr(unet, name)
    raise AttributeError(name)

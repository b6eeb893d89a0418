"""The denoising network: MONAI's ``DiffusionModelUNet`` with condition channels concatenated to x_t.

The network sees real channels only. Complex images enter as (real, imag) channel pairs; the wrapper pads
them to a multiple of the U-Net's total downsampling and crops back, so the diffusion state can stay on
the full acquired grid (where data consistency needs it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from mridiff.models.config import UNetConfig

__all__ = ["ConditionalUNet", "UNetConfig", "channels_to_complex", "complex_to_channels"]


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex (B, H, W) or (B, K, H, W) -> real (B, 2K, H, W) with (real, imag) pairs."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return torch.view_as_real(x).permute(0, 1, 4, 2, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real (B, 2, H, W) -> complex (B, H, W)."""
    return torch.complex(x[:, 0].float(), x[:, 1].float())


class ConditionalUNet(nn.Module):
    """x_t plus condition channels in, a prediction of the same shape as x_t out.

    Args:
        config: network size.

    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if len(config.channels) != len(config.attention_levels):
            raise ValueError("channels and attention_levels must have the same length")
        self.config = config
        self.unet = DiffusionModelUNet(
            spatial_dims=2,
            in_channels=config.state_channels + config.cond_channels,
            out_channels=config.state_channels,
            num_res_blocks=config.num_res_blocks,
            channels=config.channels,
            attention_levels=config.attention_levels,
            norm_num_groups=config.norm_num_groups,
            num_head_channels=config.num_head_channels,
            # torch's scaled_dot_product_attention (MONAI's "flash" path) on every device: the same numbers as
            # MONAI's einsum attention to 1e-6, and 25 % less time per network call at 256² on one CPU thread
            # (0.233 vs 0.311 s), since the attention at the coarsest level sees 1024 tokens.
            use_flash_attention=True,
        )
        self.multiple = 2 ** (len(config.channels) - 1)

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
        """Predict epsilon (or v) for x_t.

        Args:
            x_t: noisy state, complex (B, H, W) when ``state_channels == 2``, real (B, H, W) when 1.
            cond: condition, complex (B, H, W) or real channels (B, cond_channels, H, W); ``None`` if unconditional.
            t: timesteps, long (B,).

        Returns:
            A tensor shaped and typed like ``x_t``.

        """
        is_complex = x_t.is_complex()
        state = complex_to_channels(x_t) if is_complex else x_t.unsqueeze(1)
        parts = [state]
        if self.config.cond_channels:
            if cond is None:
                raise ValueError("this network needs a condition image")
            parts.append(complex_to_channels(cond) if cond.is_complex() else cond)
        inp = torch.cat(parts, dim=1)
        height, width = inp.shape[-2:]
        pad_h = (-height) % self.multiple
        pad_w = (-width) % self.multiple
        if pad_h or pad_w:
            # Zero padding: the background of MRI is (near) zero, so this adds no edges inside the object.
            inp = F.pad(inp, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        out = self.unet(inp, timesteps=t)
        out = out[..., pad_h // 2 : pad_h // 2 + height, pad_w // 2 : pad_w // 2 + width]
        return channels_to_complex(out) if is_complex else out[:, 0].float()

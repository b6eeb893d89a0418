"""The U-Net's size as a plain dataclass: light to import (no torch), so configs can be typed with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class UNetConfig:
    """Size of the U-Net.

    Attributes:
        channels: feature channels per level.
        attention_levels: whether each level has self-attention.
        num_res_blocks: residual blocks per level.
        num_head_channels: channels per attention head.
        norm_num_groups: GroupNorm groups (must divide every entry of ``channels``).
        cond_channels: real condition channels (2 for one complex image, 0 for unconditional).
        state_channels: real channels of the diffusion state (2 for a complex image, 1 for magnitude).

    """

    channels: tuple[int, ...] = (32, 64, 128)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int | tuple[int, ...] = 1
    num_head_channels: int = 32
    norm_num_groups: int = 16
    cond_channels: int = 2
    state_channels: int = 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Build from a plain dict (YAML/JSON), turning lists into tuples.

        Model cards written before 0.2 carry an always-empty ``extra`` entry; it is dropped.

        Raises:
            KeyError: For keys that are not fields (a non-empty ``extra`` included).

        """
        if "extra" in data and not data["extra"]:
            data = {k: v for k, v in data.items() if k != "extra"}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise KeyError(f"unknown model keys: {', '.join(unknown)}")
        if isinstance(known.get("num_res_blocks"), list):
            known["num_res_blocks"] = tuple(known["num_res_blocks"])
        for key in ("channels", "attention_levels"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON/YAML."""
        out = asdict(self)
        out["channels"] = list(self.channels)
        out["attention_levels"] = list(self.attention_levels)
        if isinstance(self.num_res_blocks, tuple):
            out["num_res_blocks"] = list(self.num_res_blocks)
        return out

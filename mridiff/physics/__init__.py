"""MRI physics: centred FFTs, undersampling masks, forward operators, data consistency and coil handling."""

from __future__ import annotations

from mridiff.physics.coils import (
    MIN_ESPIRIT_ACS,
    SENS_METHODS,
    espirit_maps,
    estimate_sens,
    jsense_maps,
    lowres_maps,
    prewhiten,
    rss,
    sense_combine,
)
from mridiff.physics.consistency import (
    DC_MODES,
    apply_consistency,
    cg_consistency,
    conjugate_gradient,
    estimate_noise_std,
    soft_consistency,
)
from mridiff.physics.fft import fft2c, ifft2c
from mridiff.physics.masks import (
    DEFAULT_CENTER_FRACTIONS,
    MASK_KINDS,
    MaskSpec,
    acs_box,
    acs_width,
    default_center_fraction,
    make_mask,
    mask_from_array,
)
from mridiff.physics.operators import KspaceCrop, MultiCoil, Operator, SingleCoil, expand_scale

__all__ = [
    "DC_MODES",
    "DEFAULT_CENTER_FRACTIONS",
    "MASK_KINDS",
    "MIN_ESPIRIT_ACS",
    "SENS_METHODS",
    "KspaceCrop",
    "MaskSpec",
    "MultiCoil",
    "Operator",
    "SingleCoil",
    "acs_box",
    "acs_width",
    "apply_consistency",
    "cg_consistency",
    "conjugate_gradient",
    "default_center_fraction",
    "espirit_maps",
    "estimate_noise_std",
    "estimate_sens",
    "expand_scale",
    "fft2c",
    "ifft2c",
    "jsense_maps",
    "lowres_maps",
    "make_mask",
    "mask_from_array",
    "prewhiten",
    "rss",
    "sense_combine",
    "soft_consistency",
]

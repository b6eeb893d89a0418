"""MRI physics: centred FFTs, undersampling masks, forward operators, data consistency and coil handling.

The bottom layer: it imports nothing from mridiff but :mod:`mridiff.utils`, and raises ``ValueError`` for bad
input (the command line turns that into its one-line user error).
"""

from __future__ import annotations

from mridiff.physics.coils import (
    MIN_ESPIRIT_ACS,
    SENS_METHODS,
    espirit_maps,
    estimate_sens,
    jsense_maps,
    lowres_maps,
    rss,
    sense_combine,
)
from mridiff.physics.consistency import (
    CG,
    CONSISTENCY,
    DataConsistency,
    DCMode,
    Hard,
    NoConsistency,
    Soft,
    cg_consistency,
    conjugate_gradient,
    estimate_noise_std,
    make_consistency,
    soft_consistency,
)
from mridiff.physics.fft import fft2c, ifft2c
from mridiff.physics.masks import (
    DEFAULT_CENTER_FRACTIONS,
    MASK_KINDS,
    MaskSpec,
    acs_box,
    default_center_fraction,
    make_mask,
)
from mridiff.physics.operators import AreaDownsample, KspaceCrop, MultiCoil, Operator, SingleCoil, expand_scale

__all__ = [
    "CG",
    "CONSISTENCY",
    "DEFAULT_CENTER_FRACTIONS",
    "MASK_KINDS",
    "MIN_ESPIRIT_ACS",
    "SENS_METHODS",
    "AreaDownsample",
    "DCMode",
    "DataConsistency",
    "Hard",
    "KspaceCrop",
    "MaskSpec",
    "MultiCoil",
    "NoConsistency",
    "Operator",
    "SingleCoil",
    "Soft",
    "acs_box",
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
    "make_consistency",
    "make_mask",
    "rss",
    "sense_combine",
    "soft_consistency",
]

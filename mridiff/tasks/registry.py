"""Name -> example-builder map for the three tasks (explicit dict, no string imports)."""

from __future__ import annotations

from functools import partial

from mridiff.config import RunConfig
from mridiff.tasks import augment, recon, sr
from mridiff.training.data import ExampleFn


def example_builder(cfg: RunConfig) -> ExampleFn:
    """The function that turns a fully sampled slice into a training example for ``cfg.task``."""
    masks = cfg.masks
    builders: dict[str, ExampleFn] = {
        "recon": partial(recon.training_example, kinds=masks.kinds, accelerations=masks.accelerations),
        "sr": partial(sr.training_example, scales=masks.sr_scales),
        "augment": augment.training_example,
    }
    return builders[cfg.task]



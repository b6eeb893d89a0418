"""Name -> task table for the three tasks (explicit dict, no string imports; imports neither training nor config)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from mridiff.tasks import augment, recon, sr
from mridiff.tasks.problem import Example, ExampleFn, InverseProblem, MaskSettings


@dataclass(frozen=True)
class Task:
    """What training needs from a task.

    Attributes:
        name: ``recon``, ``sr`` or ``augment``.
        examples: ``masks -> (full_kspace, sens, rng) -> example``: the training-example builder for the
            degradations in ``masks``; it builds the same problem as inference does.
        validation_problem: the problem of a collated batch of examples (``None``: nothing to validate against).

    """

    name: str
    examples: Callable[[MaskSettings], ExampleFn]
    validation_problem: Callable[[Example], InverseProblem | None]


TASKS: dict[str, Task] = {
    "recon": Task("recon", lambda m: partial(recon.training_example, kinds=m.kinds, accelerations=m.accelerations),
                  recon.validation_problem),
    "sr": Task("sr", lambda m: partial(sr.training_example, scales=m.sr_scales), sr.validation_problem),
    "augment": Task("augment", lambda m: augment.training_example, augment.validation_problem),
}


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        ValueError: For an unknown name.

    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


class TaskSettings(Protocol):
    """The parts of a run configuration a task reads (``RunConfig`` satisfies it)."""

    task: str

    @property
    def masks(self) -> MaskSettings:
        """The degradations to draw."""
        ...


def example_builder(cfg: TaskSettings) -> ExampleFn:
    """The function that turns a fully sampled slice into a training example for ``cfg.task``."""
    return get_task(cfg.task).examples(cfg.masks)

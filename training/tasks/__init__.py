"""Model families as tasks of the one training loop: which family trains on which data layout.

`python -m training --data D` trains the default family of D's layout; `--model` picks among the
families that fit it. A family is one model module (`training/models/`) and one task here.
"""
from __future__ import annotations

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from .base import Task
from .multvae import MultVAETask
from .neumf import NeuMFTask

TASKS: tuple[type[Task], ...] = (NeuMFTask, MultVAETask)
BY_VARIANT = {variant: task for task in TASKS for variant in task.variants}
MODEL_NAMES = tuple(BY_VARIANT)
DEFAULT_FOR_LAYOUT = {"pairs": "neumf", "lists": "multvae"}


def task_for(variant: str) -> type[Task]:
    if variant not in BY_VARIANT:
        raise UserError(f"unknown model {variant!r}; the families are {', '.join(MODEL_NAMES)}")
    return BY_VARIANT[variant]


def check_layout(task: type[Task], variant: str, spec: FeatureSpec, what: str) -> None:
    """One line naming the layout a family needs, when the data holds the other one; `what` names the model."""
    if spec.layout != task.layout:
        raise UserError(f"{what} needs the {task.layout} layout (made by {task.prepare_hint}); "
                        f"{spec.base_directory} holds the {spec.layout} layout, for "
                        f"{', '.join(t.variants[0] for t in TASKS if t.layout == spec.layout)}")


def model_for(spec: FeatureSpec, model: str | None) -> str:
    """The --model a run on `spec` trains: the one asked for, checked against the layout, or the layout's default."""
    variant = model or DEFAULT_FOR_LAYOUT[spec.layout]
    check_layout(task_for(variant), variant, spec, f"--model {variant}")
    return variant

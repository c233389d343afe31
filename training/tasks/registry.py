"""The task registry: the one table of model families. Every other table (the --model choices, each layout's
default, the families `training.compare` trains, the builder of a checkpoint's model) is derived from it.

`training/tasks/__init__.py` registers the families this project ships; `register` adds another (a test
registers a toy family this way), `registered` for the length of a `with` block.
"""
from __future__ import annotations

import contextlib

import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from .base import Task

TASKS: list[type[Task]] = []


def register(task: type[Task]) -> type[Task]:
    taken = set(task.variants) & set(by_variant())
    if taken:
        raise ValueError(f"{task.__name__}: the model names {sorted(taken)} are taken")
    TASKS.append(task)
    return task


@contextlib.contextmanager
def registered(task: type[Task]):
    register(task)
    try:
        yield task
    finally:
        TASKS.remove(task)


def by_variant() -> dict[str, type[Task]]:
    return {variant: task for task in TASKS for variant in task.variants}


def model_names() -> tuple[str, ...]:
    return tuple(by_variant())


def default_for_layout() -> dict[str, str]:
    """The --model a layout trains when none is given: its first registered family that is a layout default."""
    found: dict[str, str] = {}
    for task in TASKS:
        if task.layout_default:
            found.setdefault(task.layout, task.family)
    return found


def compared() -> dict[str, type[Task]]:
    """The models `training.compare` trains, and their tasks."""
    return {name: task for task in TASKS for name in task.compared}


def task_for(variant: str) -> type[Task]:
    found = by_variant()
    if variant not in found:
        raise UserError(f"unknown model {variant!r}; the families are {', '.join(found)}")
    return found[variant]


def check_layout(task: type[Task], variant: str, spec: FeatureSpec, what: str) -> None:
    """One line naming the layout a family needs, when the data holds another one; `what` names the model."""
    if spec.layout != task.layout:
        fits = [t.family for t in TASKS if t.layout == spec.layout]
        raise UserError(f"{what} needs the {task.layout} layout (made by {task.prepare_hint}); "
                        f"{spec.base_directory} holds the {spec.layout} layout, for {', '.join(fits)}")


def model_for(spec: FeatureSpec, model: str | None) -> str:
    """The --model a run on `spec` trains: the one asked for, checked against the layout, or the layout's default."""
    variant = model or default_for_layout()[spec.layout]
    check_layout(task_for(variant), variant, spec, f"--model {variant}")
    return variant


def build_model(arch: dict, sizes: dict, dropout: float = 0.0) -> torch.nn.Module:
    """The model of a checkpoint's architecture (its `variant` names the family) at these table sizes."""
    variant = arch.get("variant")
    if variant not in by_variant():
        raise UserError(f"unknown model {variant!r}; the families are {', '.join(model_names())}")
    return task_for(variant).build(arch, sizes, dropout)


def architecture_of(state: dict) -> dict | None:
    """Architecture and table sizes read from a bare state_dict's shapes, by the first family that knows it."""
    for task in TASKS:
        meta = task.from_state_dict(state)
        if meta is not None:
            return meta
    return None

"""The one loader of a saved model, for every place that reads one (`--init_from`, `--mode test`, `recommend`,
`serving`, `serving.export`, `training.compare --checkpoint`): the file read, its family found in the task
registry (DeepLearningExamples' bare state_dicts by their shapes), and one set of checks against the data.

`tables` says how the checkpoint's tables must match the data's: "exact" (the same tables), "extends"
(the data's workflow is the checkpoint's or one grown from it: `etl prepare --grow`), or None (no data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from . import checkpoint
from .growth import grow_model
from .tasks.base import Task
from .tasks.registry import architecture_of, build_model, check_layout, model_names, task_for


@dataclass(frozen=True)
class Saved:
    path: Path
    payload: dict
    task: type[Task]

    @property
    def meta(self) -> dict:
        return self.payload["meta"]

    @property
    def architecture(self) -> dict:
        return self.meta["architecture"]

    @property
    def variant(self) -> str:
        return self.architecture["variant"]

    @property
    def sizes(self) -> dict:
        """The checkpoint's own table sizes."""
        return self.meta["cardinalities"]

    def build(self, sizes: dict | None = None, dropout: float = 0.0) -> tuple[torch.nn.Module, dict]:
        """(the model with its weights at `sizes` (default: its own), rows added per role). Tables larger than the
        checkpoint's (a grown workflow) keep every old row; the new rows are a fresh model's."""
        sizes = sizes or self.sizes
        model = build_model(self.architecture, sizes, dropout)
        if sizes == self.sizes:
            model.load_state_dict(self.payload["model"])
            return model, {}
        return model, grow_model(model, self.payload["model"], self.path)


def load(path, spec: FeatureSpec | None = None, *, tables: str | None = "exact", family: type[Task] | None = None,
         what: str | None = None, any_layout: bool = False) -> Saved:
    """A saved model, checked: a known family (of `family`'s task if given), of the data's layout (unless
    `any_layout`: `training.compare` scores every family on pairs data), with tables as `tables` says."""
    path = Path(path)
    payload = checkpoint.read(path)
    if payload["meta"] is None:
        meta = architecture_of(payload["model"])
        if meta is None:
            raise UserError(f"checkpoint {path} is a state_dict, but not of a model of any family here "
                            f"({', '.join(model_names())})")
        payload = {**payload, "meta": meta}
    variant = payload["meta"]["architecture"].get("variant")
    task = task_for(variant)
    what = what or f"checkpoint {path} ({variant})"
    if family is not None and task is not family:
        raise UserError(f"{what} is a {variant} checkpoint, not {family.family}")
    if spec is not None:
        if not any_layout:
            check_layout(task, variant, spec, what)
        if tables == "exact":
            checkpoint.check_fits(payload, path, spec.table_sizes)
        elif tables == "extends":
            checkpoint.check_extends(payload, path, spec)
    return Saved(path, payload, task)

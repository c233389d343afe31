"""What a model family brings to the one training loop (`training/train.py`).

The loop owns everything that is the same for every family: resume, DDP, precision, gradient
accumulation, checkpoints, selection of the best epoch on validation, the final test, re-run rules and
the report. A task brings what differs: its flags and their defaults, the architecture it records in
checkpoints and the model built from it, its stream of batches, its loss, its evaluation and baseline, the
all-items scoring of a batch of users that full ranking, `recommend` and `serving` use, and how
`training.compare` feeds it. A task is the one place a family is known: registered once
(`tasks/registry.py`), every other table is derived from it. A new family is a model module and a task.
"""
from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, NamedTuple

import torch

from contract.feature_spec import FeatureSpec

from ..runtime import Runtime


def path(text: str):
    """A Path flag; an empty value would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


class Batch(NamedTuple):
    """-b resolved against the data: the total per optimizer step (in the task's unit, over all ranks), one
    rank's share (in the stream's unit), and the lines that say how it was chosen."""
    total: int
    per_rank: int
    notes: tuple[str, ...]


class Task(ABC):
    variants: ClassVar[tuple[str, ...]]      # the --model names this task trains; the first is the family's name
    family: ClassVar[str]                    # variants[0], set for each subclass
    title: ClassVar[str] = ""                # the family's name in prose (default: `family`)
    layout: ClassVar[str]                    # the FeatureSpec layout it needs: pairs | lists
    prepare_hint: ClassVar[str]              # how to make data of that layout
    unit: ClassVar[str]                      # what -b and the throughput count
    eval_unit: ClassVar[str]                 # what --valid_batch_size counts
    selection_metric: ClassVar[str]          # the validation figure that picks the best epoch
    shown_metrics: ClassVar[tuple[str, ...]]  # figures printed per epoch
    protocols: ClassVar[tuple[str, ...]]     # the --eval values it supports
    defaults: ClassVar[dict[str, Any]]       # its values of the shared flags left unset
    variant_defaults: ClassVar[dict[str, dict[str, Any]]] = {}  # a variant's own values, over `defaults`
    needs_history: ClassVar[bool] = False    # scores a user from their items (fold-in), not from a user row
    layout_default: ClassVar[bool] = True    # trained on its layout when no --model is given (the first such)
    compared: ClassVar[tuple[str, ...]] = ()  # the variants `training.compare` trains beside the baselines
    loss_parts: ClassVar[tuple[str, ...]] = ()  # parts of the loss each epoch's record shows and the plot draws
    schedule_parts: ClassVar[tuple[str, ...]] = ()  # what `epoch_parts` adds to a record, shown after them
    flag_help: ClassVar[dict[str, str]] = {}  # what a shared flag means for this family (--help)
    recipe: ClassVar[str] = ""               # DeepLearningExamples' flags for this family (--help)

    def __init__(self, args, spec: FeatureSpec, runtime: Runtime, say: Callable[[str], None]):
        self.args, self.spec, self.runtime, self.say = args, spec, runtime, say  # args: the run's frozen Settings
        self.initialise_seconds = 0.0  # what initialise() spent evaluating: counted in the time to quality

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "variants" in cls.__dict__:
            cls.family = cls.variants[0]  # the family's name: its first --model name
            cls.title = cls.__dict__.get("title") or cls.family

    # ---- flags -------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def add_arguments(cls, group) -> None:
        """The family's own flags, each with default None so a flag given to another family is seen."""

    @classmethod
    @abstractmethod
    def check_args(cls, args, error: Callable[[str], None]) -> None:
        """Refuse values of the family's flags that cannot work (its defaults are in `defaults`)."""

    @classmethod
    def for_data(cls, settings, spec: FeatureSpec) -> dict:
        """Settings the data decides (e.g. --eval auto), as {flag: value} for `settings.replace`; said with the
        rest of the settings on the run's first lines."""
        return {}

    @classmethod
    def drive(cls, settings, fit: Callable) -> dict:
        """The run: `fit(settings)` trains once through the one loop and returns its summary. A family whose
        recipe is several runs (NeuMF's --pretrain) drives the loop several times here."""
        return fit(settings)

    # ---- model -------------------------------------------------------------------------------
    @abstractmethod
    def architecture(self) -> dict:
        """What checkpoints record and `build` builds, from the flags."""

    @classmethod
    @abstractmethod
    def build(cls, arch: dict, sizes: dict, dropout: float) -> torch.nn.Module:
        """The model of an architecture this task recorded, at these table sizes."""

    @classmethod
    def from_state_dict(cls, state: dict) -> dict | None:
        """{"architecture", "cardinalities"} read from a bare state_dict's shapes, if it is this family's."""
        return None

    def initialise(self, model: torch.nn.Module) -> dict | None:
        """Load weights other than a fresh model's or a checkpoint's (e.g. pretrained parts): None if it loaded
        nothing, else the settings it chose on the way (e.g. {"alpha": 0.7}; may be empty)."""
        return None

    # ---- training ----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def batch(cls, settings, spec: FeatureSpec, world: int) -> Batch:
        """-b over all ranks, in this family's unit (sized to the data when not given), and one rank's share."""

    @abstractmethod
    def stream(self, per_rank: int):
        """An object with epoch(epoch, max_steps) yielding batches on the device, and close()."""

    @abstractmethod
    def loss(self, net: torch.nn.Module, model: torch.nn.Module, batch, step: int) -> tuple[torch.Tensor, dict]:
        """(mean loss, detached parts to log) of a batch at optimizer step `step`; `net` may be DDP."""

    @abstractmethod
    def micro_batches(self, batch, n: int) -> list[tuple[Any, float]]:
        """n slices of a batch and each one's share of it (gradient accumulation)."""

    @abstractmethod
    def batch_units(self, batch) -> int:
        """How many of `unit` a batch holds."""

    def epoch_parts(self, step: int) -> dict:
        """Figures of the schedule after `step` optimizer steps, added to the epoch's record."""
        return {}

    # ---- evaluation --------------------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def carve_validation(spec: FeatureSpec, seed: int):
        """A `data.carve.Carved` validation set taken out of train, for data with test but no validation."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, split: str) -> dict:
        """The family's figures of `model` on a split (validation or test), with eval_seconds/throughput."""

    @abstractmethod
    def baseline(self, split: str) -> dict:
        """The popularity baseline's figures on a split, under the same protocol(s)."""

    @abstractmethod
    def evaluated(self, split: str) -> int:
        """How many series (or held-out users) a split's figures average over, on all ranks."""

    def extra_test(self, model: torch.nn.Module) -> dict:
        """Test figures under further protocols (--eval), keys named after the protocol."""
        return {}

    # ---- all-items scoring (full ranking, recommend, serving) ----------------------------------
    @staticmethod
    @abstractmethod
    def score_users(model: torch.nn.Module, users: torch.Tensor, fold_in: torch.Tensor) -> torch.Tensor:
        """Scores (users x items) of a batch of users; `fold_in` is their history as a CSR multi-hot."""

    @classmethod
    def score_pairs(cls, model: torch.nn.Module, users: torch.Tensor, items: torch.Tensor,
                    fold_in: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The score of each (user, item) pair: its entry in the user's all-items scores. `fold_in(users)`
        gives the users' history as a CSR multi-hot."""
        unique, row = torch.unique(users, return_inverse=True)
        return cls.score_users(model, unique, fold_in(unique))[row, items]

    @staticmethod
    def candidates(counts: torch.Tensor, first_index: int) -> torch.Tensor:
        """Items the family may recommend: every real item (reserved indices excluded)."""
        mask = torch.ones_like(counts, dtype=torch.bool)
        mask[:first_index] = False
        return mask

    @abstractmethod
    def describe(self, model: torch.nn.Module) -> str:
        """The model in a few words, for the first lines of a run."""

    # ---- training.compare -----------------------------------------------------------------------
    @classmethod
    def compare_flags(cls, spec_file: Path, spec: FeatureSpec, data, scratch: Path) -> list:
        """The `python -m training` flags that train this family on compare's pairs folder (`spec_file`, read
        as `spec`); a family that reads another layout writes it to `scratch` from `data` (the held-out pairs)."""
        return ["--data", spec_file.parent, "--feature_spec_file", spec_file.name]

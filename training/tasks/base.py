"""What a model family brings to the one training loop (`training/train.py`).

The loop owns everything that is the same for every family: resume, DDP, precision, gradient
accumulation, checkpoints, selection of the best epoch on validation, the final test, re-run rules and
the report. A task brings what differs: its flags and their defaults, the architecture it records in
checkpoints, its stream of batches, its loss, its evaluation and baseline, and the all-items scoring of a
batch of users that full ranking, `recommend` and `serving` use. A new family is a model module and a task.
"""
from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import torch

from contract.feature_spec import FeatureSpec

from ..runtime import Runtime


def path(text: str):
    """A Path flag; an empty value would silently mean the current directory."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


class Task(ABC):
    variants: ClassVar[tuple[str, ...]]      # the --model names this task trains
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

    def __init__(self, args: argparse.Namespace, spec: FeatureSpec, runtime: Runtime, say: Callable[[str], None]):
        self.args, self.spec, self.runtime, self.say = args, spec, runtime, say
        self.initialise_seconds = 0.0  # what initialise() spent evaluating: counted in the time to quality

    # ---- flags -------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def add_arguments(cls, group) -> None:
        """The family's own flags, each with default None so a flag given to another family is seen."""

    @classmethod
    @abstractmethod
    def check_args(cls, args: argparse.Namespace, error: Callable[[str], None]) -> None:
        """Fill in the family's own defaults and refuse values of its flags that cannot work."""

    # ---- model -------------------------------------------------------------------------------
    @abstractmethod
    def architecture(self) -> dict:
        """What checkpoints record and `models.build_model` builds, from the flags."""

    def initialise(self, model: torch.nn.Module) -> bool:
        """Load weights other than a fresh model's or a checkpoint's (e.g. pretrained parts); whether it did."""
        return False

    # ---- training ----------------------------------------------------------------------------
    @abstractmethod
    def batch_per_rank(self) -> int:
        """-b over all ranks, in this family's unit, as one rank's share (saying what it chose)."""

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

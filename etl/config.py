"""What `etl prepare` is asked to do (`PrepareConfig`) and what a data layout brings to it (`Layout`).

A leaf: `prepare` (the dispatcher and the fit-or-apply skeleton) and the layouts it dispatches to
(`pairs`, `lists`) import it; it imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from contract.errors import UserError

from .readers import ColumnNames

# Train partitions come in multiples of this so 1, 2, 4 or 8 ranks get equal shares.
PARTITION_MULTIPLE = 8
WORKFLOW_FOLDER = "workflow"
SCRATCH_FOLDER = "_scratch"  # inside the temporary output: staged input, vocabularies while fitting, lists


@dataclass
class PrepareConfig:
    input: Path
    output: Path
    format: str = "auto"
    workflow_dir: Path | None = None  # where to save the fitted workflow; default OUTPUT/workflow
    workflow: Path | None = None  # a saved workflow to apply instead of fitting one
    grow: bool = False  # extend `workflow`'s vocabularies by the new ids instead of dropping their rows
    negatives: int = 100
    validation: bool = True  # also hold out each user's second-latest positive as a validation series
    min_rating: float | None = None
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    scheduler: str | None = None
    partitions: int | None = None
    columns: ColumnNames = field(default_factory=ColumnNames)
    overwrite: bool = False
    quiet: bool = False
    split: str = "time"  # "users": the lists layout for VAE-CF (etl/lists.py)
    heldout_users: int | None = None  # --split users: validation users, and as many test users
    # A given split (etl/given.py): `input` is the train file, these the user's own test (and validation) pairs.
    test_input: Path | None = None
    validation_input: Path | None = None

    @property
    def fitted_workflow_dir(self) -> Path | None:
        """Where the fitted (or grown) workflow is saved: with its data unless --workflow-dir says otherwise."""
        if self.workflow is not None and not self.grow:
            return None
        return self.workflow_dir or self.output / WORKFLOW_FOLDER

    def __post_init__(self):
        self.input, self.output = Path(self.input), Path(self.output)
        self.workflow_dir = Path(self.workflow_dir) if self.workflow_dir else None
        self.test_input = Path(self.test_input) if self.test_input is not None else None
        self.validation_input = Path(self.validation_input) if self.validation_input is not None else None
        if self.validation_input is not None and self.test_input is None:
            raise UserError("--validation-input is part of a given split: name its test file with --test-input")
        if self.test_input is not None and self.workflow is not None:
            raise UserError("--test-input fits a new workflow on --input (the train file) and applies it to the test "
                            "file; --workflow/--grow encode with a saved one instead: leave them out")
        if self.grow and self.workflow is None:
            raise UserError("--grow extends a saved workflow: name it with --workflow")
        if self.workflow is not None:
            self.workflow = Path(self.workflow)
            if self.workflow_dir is not None:
                raise UserError("--workflow applies a saved workflow and --workflow-dir saves a new one: pass one")
            if self.min_rating is not None:
                raise UserError(f"--min-rating: the positive rule is part of the saved workflow {self.workflow}; "
                                "leave the flag out")
        if self.negatives < 1:
            raise UserError("--negatives must be at least 1")
        if self.partitions is not None and self.partitions < 1:
            raise UserError("--partitions must be at least 1")


@dataclass(frozen=True)
class Layout:
    """What one data layout brings to `prepare`; reading, fit-or-apply, saving and stats are written once there."""

    fitting: str  # what the fit stage says it fits
    build: Callable  # (vocab_dir, min_rating, vocabs=None) -> the unfitted workflow (a graph in workflows/)
    check: Callable  # (workflow, where) -> None: a UserError for a saved workflow of another layout
    cardinalities: Callable  # fitted workflow -> {"user_id": table size, "item_id": table size}
    split: Callable  # (cfg, workflow, dataset, cards, out, client, device, log) -> (totals, the layout's stats)
    spec: Callable  # (out, cards, encoding, cfg, the layout's stats) -> the FeatureSpec of what `split` wrote
    summary: Callable  # (log, cfg, stats) -> None: the closing lines
    name: str | None = None  # stats.json's "layout" (the pairs layout's stats predate the key)
    timestamp_optional: bool = False  # input without a timestamp column is read

"""The one pipeline behind `prepare` and `transform`: raw input -> typed parquet -> workflow -> encoded rows.

`prepare` fits a new workflow on the staged data, `transform` loads a saved one; from there on
both apply the same workflow (and so the same positive rule) to the same staged data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import UserError

from . import backend
from .readers import ColumnNames, resolve_input, stage_ratings, staged_files
from .workflow import ENCODED_COLUMNS


@dataclass(frozen=True)
class RawInput:
    """Where the raw interactions are and how to read them."""

    path: Path
    format: str = "auto"
    columns: ColumnNames = field(default_factory=ColumnNames)


def stage(raw: RawInput, scratch: Path, device: str, client=None, quiet: bool = False):
    """Parse the raw input once into typed parquet under `scratch`; returns (Dataset, format)."""
    path, fmt = resolve_input(raw.path, raw.format, scratch)
    rows = stage_ratings(path, fmt, raw.columns, scratch / "raw", client, quiet)
    if rows == 0:
        raise UserError(f"{raw.path} holds no interactions")
    return backend.dataset(staged_files(scratch / "raw"), device), fmt


def encode(workflow, dataset):
    """The workflow applied to the staged data: positives only, encoded ids, label, time, rating."""
    return workflow.transform(dataset).to_ddf()[ENCODED_COLUMNS]

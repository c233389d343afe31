"""`etl prepare --workflow SAVED --grow`: the saved vocabularies extended by the ids the new data brings.

NVTabular has no warm start (#349); `Categorify(vocabs=...)` pins a vocabulary in a given order from
index 3 (23.08), so the saved order followed by the new ids keeps every old index: folders encoded by
the older workflow stay valid under the grown one. New ids are appended most frequent first (ties by
value, so the order is reproducible), as a fit orders them. Every workflow a grown one extends, with
its table sizes, is kept next to it (lineage.json) and written into the FeatureSpec (`encoding.extends`),
so training can tell a checkpoint of an ancestor's data from one of unrelated data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.errors import UserError
from contract.vocabulary import read_vocabulary

from .workflow import FIRST_ID, ID_COLUMNS, fingerprint, vocabulary_files

LINEAGE_FILE = "lineage.json"
ROLES = dict(zip(ID_COLUMNS, ("users", "items")))  # column -> its role, as checkpoints name table sizes


@dataclass(frozen=True)
class Growth:
    vocabs: dict  # column -> raw ids in index order from FIRST_ID: the saved ones, then the new ones
    extends: list  # the workflows the grown one extends, nearest first: {"workflow_id", "cardinalities"}
    added: dict  # role -> how many ids were appended

    def stats(self) -> dict:
        parent = self.extends[0]
        return {"extends": parent["workflow_id"], "cardinalities_before": parent["cardinalities"],
                **{f"new_{role}": n for role, n in self.added.items()}}


def saved_vocabulary(workflow_dir: Path, column: str) -> pd.Series:
    """The raw ids of a saved workflow's column in index order, checked to start at FIRST_ID without gaps."""
    vocab = read_vocabulary(Path(workflow_dir) / vocabulary_files()[column], column).dropna()
    if not (vocab.index == pd.RangeIndex(FIRST_ID, FIRST_ID + len(vocab))).all():
        raise UserError(f"{workflow_dir}: the {column} vocabulary does not run from index {FIRST_ID} without gaps, "
                        "so it cannot be extended; prepare the older data again")
    return vocab.reset_index(drop=True)


def _value_counts(dataset, column: str, client) -> pd.Series:
    counts = dataset.to_ddf()[column].value_counts()
    found = client.compute(counts, sync=True) if client is not None else counts.compute()
    return found.to_pandas() if hasattr(found, "to_pandas") else found  # cuDF on a GPU


def _appended(old: pd.Series, counts: pd.Series, column: str, where) -> pd.Series:
    """The ids of `counts` that `old` lacks, most frequent first, ties by value."""
    if len(old) and len(counts) and pd.api.types.is_integer_dtype(old) != pd.api.types.is_integer_dtype(counts.index):
        kinds = ("integers", "text") if pd.api.types.is_integer_dtype(old) else ("text", "integers")
        raise UserError(f"the saved workflow's {column} values are {kinds[0]} but {where}'s are {kinds[1]}: "
                        "they would never match; read both with the same column types")
    new = counts[~counts.index.isin(old)]
    frame = pd.DataFrame({"id": new.index, "count": new.to_numpy()}).sort_values(["count", "id"],
                                                                              ascending=[False, True])
    return pd.Series(frame["id"].to_numpy(), dtype=old.dtype if len(old) else frame["id"].dtype)


def grow(workflow_dir: Path, cards: dict, dataset, client, where) -> Growth:
    """The saved workflow's vocabularies extended by `dataset`'s unseen ids; `cards` are its table sizes."""
    vocabs, added = {}, {}
    for column, role in ROLES.items():
        old = saved_vocabulary(workflow_dir, column)
        new = _appended(old, _value_counts(dataset, column, client), column, where)
        vocabs[column] = pd.concat([old, new], ignore_index=True)
        added[role] = len(new)
    parent = {"workflow_id": fingerprint(workflow_dir),
              "cardinalities": {role: int(cards[column]) for column, role in ROLES.items()}}
    return Growth(vocabs, [parent, *lineage(workflow_dir)], added)


def lineage(workflow_dir: Path) -> list:
    """The workflows a saved workflow extends, nearest first (none for a fitted one)."""
    path = Path(workflow_dir) / LINEAGE_FILE
    if not path.is_file():
        return []
    try:
        found = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} is damaged ({exc}): prepare the data again")
    if not isinstance(found, list):
        raise UserError(f"{path} is damaged (not a list): prepare the data again")
    return found


def write_lineage(workflow_dir: Path, growth: Growth) -> None:
    (Path(workflow_dir) / LINEAGE_FILE).write_text(json.dumps(growth.extends, indent=2))

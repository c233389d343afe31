"""A lists-layout folder built from a pairs-layout folder's protocol data, so the one training loop trains
Mult-VAE on exactly the train positives the other families train on (no second `etl prepare`).

train: every user with a train positive and their list; validation and test: the evaluated users, their
train positives as the fold-in list and their held-out positive(s) as the target list (Mult-VAE picks its
best epoch on that validation). Item indices and cardinalities are the pairs folder's, so a checkpoint
trained here scores the pairs folder's users. A user's own split (metadata.protocol.split given) stays one:
the folder says so, and Mult-VAE then picks its epoch on validation Recall@K over all of a user's targets, as
the pairs families do on that split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.chunks import list_column
from contract.feature_spec import FeatureSpec

from ..ranking import RankingSet
from ..sparse import Lists
from .heldout_pairs import SPLITS, HeldOutPairs

FOLD_IN, TARGET = "fold_in", "target"


def _list_column(lists: Lists) -> pa.ListArray:
    return list_column(lists.offsets.cpu().numpy(), lists.items.cpu().numpy())


def _write(folder: Path, mapping: str, columns: dict) -> list[dict]:
    (folder / mapping).mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / mapping / "part_00000.parquet")
    return [{"type": "parquet", "features": list(columns), "files": [f"{mapping}/part_00000.parquet"]}]


def write_lists_folder(data: HeldOutPairs, spec: FeatureSpec, folder: Path) -> Path:
    """Write the lists layout of `data` into the new folder `folder`; returns it."""
    user, item = spec.user_feature, spec.item_feature
    lengths = data.train.offsets.diff().cpu().numpy()
    users = np.flatnonzero(lengths > 0)
    source = {"train": _write(folder, "train", {user: pa.array(users), item: _list_column(data.train.take(users))})}
    for split in SPLITS:
        ranked: RankingSet = data.splits[split]
        source[split] = _write(folder, split, {user: pa.array(ranked.users.cpu().numpy()),
                                               FOLD_IN: _list_column(ranked.fold_in),
                                               TARGET: _list_column(ranked.targets)})
    lists = {"dtype": "torch.int64", "cardinality": spec.item_cardinality, "multivalued": True}
    FeatureSpec(feature_spec={user: {"dtype": "torch.int64", "cardinality": spec.user_cardinality},
                              item: dict(lists), FOLD_IN: dict(lists), TARGET: dict(lists)},
                source_spec=source,
                channel_spec={"user_ch": [user], "item_ch": [item], "fold_in_ch": [FOLD_IN], "target_ch": [TARGET]},
                metadata={"encoding": {"first_index": spec.first_index, "workflow_id": spec.workflow_id,
                                       "extends": spec.encoding.get("extends") or []},
                          "built_from": str(spec.base_directory.resolve()),
                          **({"protocol": dict(spec.protocol)} if spec.given_split else {})}).to_yaml(
        folder / "feature_spec.yaml")
    return folder

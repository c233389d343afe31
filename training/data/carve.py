"""A validation set carved from train, for data that has a test mapping but no validation mapping (BYO data,
`etl prepare --no-validation`), so the best epoch is never chosen on test.

As the NCF paper tuned: one positive per user leaves train for validation (the latest where the spec has a
timestamp channel, else a seeded random one), with its own sampled negatives as many as the test series have.
A user's own split (`etl prepare --test-input`, ranked against the whole catalogue) gives a seeded
GIVEN_VALIDATION_SHARE of each user's train positives to validation instead (at least one, never the last).
For the lists layout, held-out users leave train, each list split into fold-in and target as the ETL does.
The rules are the ETL's (`contract/holdout.py`). The result is a FeatureSpec in a temporary folder whose train
and validation mappings are the carved ones and whose other mappings are the original files; `close()` removes it.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.atomic import scratch_dir
from contract.chunks import list_column
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from contract.holdout import (
    UserLists,
    default_heldout_users,
    fold_in_and_target,
    hash_of,
    hold_out_latest,
    random_order,
    sample_negatives,
    unseen_counts,
)

VALIDATION_STREAM = 2  # negatives drawn independently of the ETL's test (0) and validation (1) streams
_USERS_SALT = 0x43415256  # the carved held-out users' stream
_GIVEN_SALT = 0x47495645  # the order of each user's items when carving from a given split
GIVEN_VALIDATION_SHARE = 0.1  # of each user's train positives, when a given split comes without validation


@dataclass
class Carved:
    spec: FeatureSpec
    what: str  # one line for the run's first lines and its summary
    folder: Path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def needs_carving(spec: FeatureSpec) -> bool:
    return "test" in spec.source_spec and "validation" not in spec.source_spec


def _derived(spec: FeatureSpec, folder: Path, mappings: dict) -> FeatureSpec:
    """`spec` with `mappings` (name -> chunks written under `folder`) replaced and every other file absolute."""
    # absolute even where the spec was read from a relative path: the derived spec lives in another folder
    source = {name: [{**chunk, "files": [str(Path(f).resolve()) for f in chunk["files"]]} for chunk in spec.chunks(name)]
              for name in spec.source_spec}
    source.update(mappings)
    derived = FeatureSpec(spec.feature_spec, source, spec.channel_spec, dict(spec.metadata), folder)
    derived.validate(tuple(source))
    return derived


def _write(folder: Path, name: str, table: pa.Table, features) -> dict:
    (folder / name).mkdir()
    path = folder / name / "part_00000.parquet"
    pq.write_table(table, path)
    return {"type": "parquet", "features": list(features), "files": [str(path)]}


def carve_given(spec: FeatureSpec, seed: int) -> Carved:
    """GIVEN_VALIDATION_SHARE of the train positives of each user with two or more (rounded, at least one, never
    all), chosen by a seeded hash of (user, item): validation positives ranked against the whole catalogue."""
    user, item, label = spec.user_feature, spec.item_feature, spec.label_feature
    train = spec.read("train", [user, item, label])
    positive = train[label].to_numpy() > 0
    u, i = train[user].to_numpy(np.int64), train[item].to_numpy(np.int64)
    order = np.lexsort((hash_of(seed, _GIVEN_SALT, u, i), u))  # each user's rows in a seeded random order
    rank = np.empty(len(u), np.int64)
    sorted_users = u[order]
    starts = np.searchsorted(sorted_users, sorted_users)  # first row of each row's user, in that order
    rank[order] = np.arange(len(u)) - starts
    per_user = np.bincount(u[positive], minlength=spec.user_cardinality)
    share = np.where(per_user >= 2, np.clip(np.round(GIVEN_VALIDATION_SHARE * per_user), 1, per_user - 1), 0)
    # rank counts every row of the user; only positives leave (train rows are positives in the ETL's output)
    held = positive & (rank < share[u])
    if not held.any():
        raise UserError("the data has no validation mapping and no user has two train positives to carve one "
                        "from: pass --no_eval, or add a validation mapping")
    features = [user, item, label]
    folder = scratch_dir("carved-validation")
    mappings = {name: [_write(folder, name, pa.Table.from_pandas(train.loc[rows, features], preserve_index=False),
                              features)] for name, rows in (("train", ~held), ("validation", held))}
    what = (f"validation carved from train: a seeded {GIVEN_VALIDATION_SHARE:.0%} of each user's train positives "
            f"(--seed {seed}; users with 2+), {int(held.sum()):,} pairs of {len(np.unique(u[held])):,} users, "
            "out of training")
    return Carved(_derived(spec, folder, mappings), what, folder)


def carve_pairs(spec: FeatureSpec, seed: int) -> Carved:
    """One positive per user with at least two train positives, and its negatives; the rest stay in train.
    A user's own split: `carve_given`."""
    if spec.given_split:
        return carve_given(spec, seed)
    user, item, label = spec.user_feature, spec.item_feature, spec.label_feature
    time = (spec.channel_spec.get("timestamp_ch") or [None])[0]
    train = spec.read("train", [user, item, label] + ([time] if time else []))
    positive = train[label].to_numpy() > 0
    u, i = train[user].to_numpy(np.int64)[positive], train[item].to_numpy(np.int64)[positive]
    order = train[time].to_numpy(np.int64)[positive] if time else random_order(u, i, seed)
    _, _, _, held_u, held_i = hold_out_latest(u, i, order, seed)
    # Negatives are items the user has nowhere: train, test positives, known pairs.
    seen = [train[[user, item]]]
    test = spec.read("test")
    seen.append(test[test[label] > 0][[user, item]])
    if "known" in spec.source_spec:
        seen.append(spec.read("known", [user, item]))
    seen = pd.concat(seen, ignore_index=True)
    keys = np.unique(seen[user].to_numpy(np.int64) * spec.item_cardinality + seen[item].to_numpy(np.int64))
    all_u, all_i = keys // spec.item_cardinality, keys % spec.item_cardinality
    negatives = spec.samples_per_series - 1
    room = unseen_counts(held_u, all_u, spec.item_cardinality, spec.first_index) >= negatives
    held_u, held_i = held_u[room], held_i[room]
    if len(held_u) == 0:
        raise UserError("the data has no validation mapping and no user has two train positives and "
                        f"{negatives} unseen items to carve one from: pass --no_eval, or add a validation mapping")
    negs = sample_negatives(held_u, all_u, all_i, spec.item_cardinality, negatives, seed, spec.first_index,
                            stream=VALIDATION_STREAM)
    held_keys = held_u * spec.item_cardinality + held_i
    train_keys = train[user].to_numpy(np.int64) * spec.item_cardinality + train[item].to_numpy(np.int64)
    stays = ~(np.isin(train_keys, held_keys) & positive)
    length = negatives + 1
    series = pd.DataFrame({user: np.repeat(held_u, length), item: np.column_stack([held_i, negs]).ravel(),
                           label: np.tile(np.r_[1.0, np.zeros(negatives)], len(held_u))})
    series = series.astype({user: train[user].dtype, item: train[item].dtype, label: train[label].dtype})
    folder = scratch_dir("carved-validation")
    features = [user, item, label]
    mappings = {
        "train": [_write(folder, "train", pa.Table.from_pandas(train.loc[stays, features], preserve_index=False),
                         features)],
        "validation": [_write(folder, "validation", pa.Table.from_pandas(series, preserve_index=False), features)],
    }
    rule = "each user's latest positive" if time else f"a seeded random positive per user (--seed {seed})"
    what = f"validation carved from train: {rule}, {len(held_u):,} series x {length}, out of training"
    return Carved(_derived(spec, folder, mappings), what, folder)


def carve_lists(spec: FeatureSpec, seed: int) -> Carved:
    """Held-out users taken out of train (as many as the ETL's default), their lists split into fold-in and target."""
    from .lists import read_lists

    user, item = spec.user_feature, spec.item_feature
    data = read_lists(spec, "train", [user, item])
    lists = UserLists(data[user], *data[item])
    eligible = np.flatnonzero(lists.lengths >= 2)
    n = default_heldout_users(len(eligible))
    if len(eligible) < 3:
        raise UserError("the data has no validation mapping and too few train users with two items to carve one "
                        "from: pass --no_eval, or add a validation mapping")
    chosen = np.zeros(len(lists), dtype=bool)
    chosen[eligible[np.argsort(hash_of(seed, _USERS_SALT, lists.users[eligible]), kind="stable")[:n]]] = True
    fold_in, target = fold_in_and_target(lists.take_users(chosen), seed)
    rest = lists.take_users(~chosen)
    folder = scratch_dir("carved-validation")
    fold, tgt = spec.fold_in_feature, spec.target_feature

    def column(ragged: UserLists) -> pa.ListArray:
        return list_column(ragged.offsets, ragged.items)

    mappings = {
        "train": [_write(folder, "train", pa.table({user: rest.users, item: column(rest)}), [user, item])],
        "validation": [_write(folder, "validation", pa.table({user: fold_in.users, fold: column(fold_in),
                                                              tgt: column(target)}), [user, fold, tgt])],
    }
    what = (f"validation carved from train: {n:,} seeded random users (their items split 80/20 into fold-in "
            "and target), out of training")
    return Carved(_derived(spec, folder, mappings), what, folder)

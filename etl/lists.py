"""`etl prepare --split users`: the lists layout for VAE-CF (one row per user, their items as a list).

raw -> typed parquet -> fit the workflow (workflows/lists.py: Categorify user and item ids, the positive
rule as the label, then `Groupby` user: items and labels as lists in time order) -> shuffle by user
(Groupby never moves rows between partitions) -> apply the workflow -> per partition: distinct
positives and known items (scratch parquet) -> the held-out users (a global choice over one number
per user) -> the items training users have (a global union) -> per partition: train / validation /
test / known lists. The rules are in `user_split`; they make the output independent of the
partitioning and scheduler. Reading, fit-or-apply, saving and stats are `prepare`'s (etl/prepare.py).

DATA_DIR/train/part_*.parquet       user_id, item_id (list): the training users' positives
DATA_DIR/validation/part_*.parquet  user_id, fold_in (list), target (list): held-out users
DATA_DIR/test/part_*.parquet        the same for the test users
DATA_DIR/known/part_*.parquet       user_id, item_id (list): items rated below the positive rule
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.chunks import list_column, read_parquet_lists
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from workflows.lists import (
    ITEM,
    ITEM_LIST,
    LABEL_LIST,
    USER,
    EncodedKeyGroupby,  # noqa: F401  (workflows saved before it moved pickled it from here)
    build_lists_workflow,
)

from .backend import to_host
from .config import PARTITION_MULTIPLE, SCRATCH_FOLDER, Layout, PrepareConfig
from .progress import StageLog, compute_with_progress
from .user_split import MIN_POSITIVES, UserLists, choose_heldout, clean, split_users, train_item_counts
from .workflow import FIRST_ID

FOLD_IN, TARGET = "fold_in", "target"
MAPPINGS = {"train": (ITEM,), "validation": (FOLD_IN, TARGET), "test": (FOLD_IN, TARGET), "known": (ITEM,)}


def list_cardinalities(workflow) -> dict[str, int]:
    """Table sizes of the user ids and of the item ids inside the lists."""
    from nvtabular.ops import get_embedding_sizes

    sizes = get_embedding_sizes(workflow)
    single, multi = sizes if isinstance(sizes, tuple) else (sizes, {})
    return {USER: int(single[USER][0]), ITEM: int(multi[ITEM_LIST][0])}


def _check_lists_workflow(workflow, where) -> None:
    outputs = set(workflow.output_schema.column_names)
    if outputs != {USER, ITEM_LIST, LABEL_LIST}:
        raise UserError(f"workflow {where} outputs {sorted(outputs)}, not per-user lists: it was not fitted by "
                        "`etl prepare --split users`")


# ---- per partition ---------------------------------------------------------------------------
def _ragged(column) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, flat values) of a pandas column of lists."""
    lengths = np.fromiter((len(x) for x in column), dtype=np.int64, count=len(column))
    flat = np.concatenate([np.asarray(x) for x in column]) if len(column) else np.zeros(0)
    return lengths, flat


def _write(path: Path, users, **lists: UserLists) -> None:
    columns = {USER: pa.array(np.asarray(users, dtype=np.int64))}
    columns.update({name: list_column(value.offsets, value.items) for name, value in lists.items()})
    pq.write_table(pa.table(columns), path)


def _read(path: Path, *names) -> tuple[np.ndarray, list[UserLists]]:
    data = read_parquet_lists(str(path), [USER, *names])
    return data[USER], [UserLists(data[USER], *data[name]) for name in names]


def clean_partition(df, path: Path) -> dict:
    """Distinct positives and known items of one grouped partition, into scratch parquet."""
    df = to_host(df)
    users = df[USER].to_numpy(np.int64)
    lengths, items = _ragged(df[ITEM_LIST])
    _, labels = _ragged(df[LABEL_LIST])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    positives, known, counts = clean(users, offsets, items, labels, FIRST_ID)
    _write(path, users, positives=positives, known=known)
    keep = users >= FIRST_ID
    return {"users": users[keep], "positives": positives.lengths[keep], **counts}


def train_items(path: Path, validation, test, cardinality: int) -> np.ndarray:
    _, (positives,) = _read(path, "positives")
    return train_item_counts(positives, validation, test, cardinality)


def split_partition(path: Path, index: int, out: Path, validation, test, in_train, seed: int) -> dict:
    """Write one partition's train, validation, test and known lists."""
    _, (positives, known) = _read(path, "positives", "known")
    lists, counts = split_users(positives, known, validation, test, in_train, seed)
    name = f"part_{index:05d}.parquet"
    if len(lists["train"]):
        _write(out / "train" / name, lists["train"].users, **{ITEM: lists["train"]})
    for mapping in ("validation", "test"):
        fold_in, target = lists[mapping]
        if len(fold_in):
            _write(out / mapping / name, fold_in.users, **{FOLD_IN: fold_in, TARGET: target})
    if len(lists["known"]):
        _write(out / "known" / name, lists["known"].users, **{ITEM: lists["known"]})
    return counts


# ---- the layout's steps in `prepare` -----------------------------------------------------------
def split(cfg: PrepareConfig, workflow, dataset, cards: dict, out: Path, client, device: str, log: StageLog):
    import dask
    import nvtabular as nvt

    scratch = out / SCRATCH_FOLDER
    with log.stage("group", "shuffle by user, Groupby items per user in time order, distinct positives"):
        ddf = dataset.to_ddf()
        nparts = cfg.partitions or PARTITION_MULTIPLE * math.ceil(ddf.npartitions / PARTITION_MULTIPLE)
        by_user = ddf.shuffle(USER, npartitions=nparts, shuffle="disk" if client is None else "tasks")
        grouped = workflow.transform(nvt.Dataset(by_user, cpu=device == "cpu")).to_ddf()
        (scratch / "lists").mkdir()
        parts = [scratch / "lists" / f"part_{i:05d}.parquet" for i in range(grouped.npartitions)]
        tasks = [dask.delayed(clean_partition)(part, path) for part, path in zip(grouped.to_delayed(), parts)]
        cleaned = compute_with_progress(*tasks, client=client, quiet=cfg.quiet)
    with log.stage("split", "held-out users, training items, fold-in/target lists, parquet"):
        users = np.concatenate([c["users"] for c in cleaned])
        positives = np.concatenate([c["positives"] for c in cleaned])
        validation, test = choose_heldout(users, positives, cfg.heldout_users, cfg.seed)
        counts = compute_with_progress(*[dask.delayed(train_items)(p, validation, test, cards[ITEM]) for p in parts],
                                       client=client, quiet=True)
        in_train = np.sum(counts, axis=0) > 0
        for mapping in MAPPINGS:
            (out / mapping).mkdir()
        tasks = [dask.delayed(split_partition)(p, i, out, validation, test, in_train, cfg.seed)
                 for i, p in enumerate(parts)]
        written = compute_with_progress(*tasks, client=client, quiet=cfg.quiet)
    totals = {key: sum(c[key] for c in cleaned) for key in ("interactions", "oov_rows_dropped", "duplicates_dropped")}
    totals.update({key: sum(c[key] for c in written) for key in written[0]})
    totals["train_items"] = int(in_train.sum())
    return totals, {"heldout_users": len(validation), "min_positives": MIN_POSITIVES}


def lists_spec(directory: Path, cards: dict, encoding: dict, cfg: PrepareConfig | None = None,
               layout_stats: dict | None = None) -> FeatureSpec:
    """The FeatureSpec of the lists layout: list features are declared `multivalued: true`."""
    item = {"dtype": "torch.int64", "cardinality": cards[ITEM], "multivalued": True}
    source = {}
    for mapping, lists in MAPPINGS.items():
        files = sorted(f"{mapping}/{p.name}" for p in (Path(directory) / mapping).glob("*.parquet"))
        if files:
            source[mapping] = [{"type": "parquet", "features": [USER, *lists], "files": files}]
    return FeatureSpec(
        feature_spec={USER: {"dtype": "torch.int64", "cardinality": cards[USER]}, ITEM: dict(item),
                      FOLD_IN: dict(item), TARGET: dict(item)},
        source_spec=source,
        channel_spec={"user_ch": [USER], "item_ch": [ITEM], "fold_in_ch": [FOLD_IN], "target_ch": [TARGET]},
        metadata={"encoding": encoding},
        base_directory=Path(directory),
    )


def _summary(log: StageLog, cfg: PrepareConfig, totals: dict) -> None:
    log.say(
        f"prepared {cfg.output}: {totals['train_users']:,} train users ({totals['train_interactions']:,} positives), "
        f"{totals['validation_users']:,} validation and {totals['test_users']:,} test users (fold-in/target lists), "
        f"{totals['train_items']:,} items, {totals['known_items']:,} known non-positive items, "
        f"{totals['duplicates_dropped']:,} duplicates dropped, {log.total:.1f}s"
    )
    if totals["users_below_min_positives"]:
        log.say(f"note: {totals['users_below_min_positives']:,} user(s) with fewer than {MIN_POSITIVES} positives "
                "were dropped")
    if totals["heldout_users_dropped"]:
        log.say(f"note: {totals['heldout_users_dropped']:,} held-out user(s) had fewer than 2 items that training "
                "users have: dropped")


LAYOUT = Layout(
    fitting="Categorify user and item ids, positive label, Groupby user", build=build_lists_workflow,
    check=_check_lists_workflow, cardinalities=list_cardinalities, split=split, spec=lists_spec, summary=_summary,
    name="lists", timestamp_optional=True,
)

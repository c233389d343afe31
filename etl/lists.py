"""`etl prepare --split users`: the lists layout for VAE-CF (one row per user, their items as a list).

raw -> typed parquet -> fit the workflow (Categorify user and item ids, the positive rule as the label,
then `Groupby` user: items and labels as lists in time order) -> shuffle by user (Groupby never moves
rows between partitions) -> apply the workflow -> per partition: distinct positives and known items
(scratch parquet) -> the held-out users (a global choice over one number per user) -> the items
training users have (a global union) -> per partition: train / validation / test / known lists.
The rules are in `user_split`; they make the output independent of the partitioning and scheduler.

DATA_DIR/train/part_*.parquet       user_id, item_id (list): the training users' positives
DATA_DIR/validation/part_*.parquet  user_id, fold_in (list), target (list): held-out users
DATA_DIR/test/part_*.parquet        the same for the test users
DATA_DIR/known/part_*.parquet       user_id, item_id (list): items rated below the positive rule
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nvtabular import ops

from contract.atomic import atomic_dir
from contract.chunks import read_parquet_lists
from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from .backend import dask_client, resolve_device, to_host
from .output_spec import encoding_metadata
from .pipeline import RawInput, stage
from .progress import StageLog, compute_with_progress
from .user_split import MIN_POSITIVES, UserLists, choose_heldout, clean, split_users, train_item_counts
from .workflow import FIRST_ID, build_workflow, load_workflow

USER, ITEM = "user_id", "item_id"
ITEM_LIST, LABEL_LIST = f"{ITEM}_list", "label_list"  # what the Groupby names its list aggregations
FOLD_IN, TARGET = "fold_in", "target"
MAPPINGS = {"train": (ITEM,), "validation": (FOLD_IN, TARGET), "test": (FOLD_IN, TARGET), "known": (ITEM,)}


class EncodedKeyGroupby(ops.Groupby):
    """NVTabular's Groupby, keeping the Categorified user id as its key.

    The stock operator declares its key columns as dependencies, so the key is taken from the
    workflow's input (the raw id) instead of from Categorify's output.
    """

    @property
    def dependencies(self):
        return []


def build_lists_workflow(vocab_dir: Path, min_rating: float | None):
    """Categorify and the positive rule (the time split's workflow), then items and labels per user in time order."""
    import nvtabular as nvt

    encoded = build_workflow(vocab_dir, min_rating).output_node
    # (timestamp, item) makes the order within a user deterministic when timestamps tie or are absent.
    grouped = encoded >> EncodedKeyGroupby(groupby_cols=[USER], sort_cols=["timestamp", ITEM],
                                           aggs={ITEM: "list", "label": "list"})
    return nvt.Workflow(grouped)


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


def _list_array(lists: UserLists) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(lists.offsets.astype(np.int32)), pa.array(lists.items, pa.int64()))


def _write(path: Path, users, **lists: UserLists) -> None:
    columns = {USER: pa.array(np.asarray(users, dtype=np.int64))}
    columns.update({name: _list_array(value) for name, value in lists.items()})
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


# ---- the command ------------------------------------------------------------------------------
def prepare_lists(cfg) -> dict:
    """`etl prepare --split users` (cfg: etl.prepare.PrepareConfig)."""
    from .prepare import PARTITION_MULTIPLE, WORKFLOW_FOLDER

    if cfg.split != "users":
        raise UserError(f"--heldout-users applies to --split users, not --split {cfg.split}"
                        if cfg.split == "time" else f"unknown --split {cfg.split!r}; choose time or users")
    log = StageLog(cfg.quiet)
    device = resolve_device(cfg.device)
    applied = load_workflow(cfg.workflow) if cfg.workflow is not None else None
    if applied is not None:
        _check_lists_workflow(applied, cfg.workflow)
    raw = RawInput(cfg.input, cfg.format, replace(cfg.columns, timestamp_optional=True))
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(device, cfg.workers, cfg.scheduler))
        out = stack.enter_context(atomic_dir(cfg.output, cfg.overwrite))
        if applied is not None:
            workflow_dir, workflow_tmp = cfg.workflow, None
        elif cfg.workflow_dir is None:  # inside the output: replaced with it, never shared by name
            workflow_dir, workflow_tmp = cfg.output / WORKFLOW_FOLDER, out / WORKFLOW_FOLDER
        else:
            workflow_dir = cfg.workflow_dir
            workflow_tmp = stack.enter_context(atomic_dir(cfg.workflow_dir, cfg.overwrite))
        scratch = out / "_scratch"
        with log.stage("read", f"reading {cfg.input} ({cfg.format}) into typed parquet"):
            dataset, fmt = stage(raw, scratch, device, client, cfg.quiet)
        if applied is None:
            with log.stage("fit", "fitting the NVTabular workflow (Categorify user and item ids, positive label, "
                                  "Groupby user)"):
                workflow = build_lists_workflow(scratch / "vocab", cfg.min_rating)
                workflow.fit(dataset)
        else:
            workflow = applied
            log.say(f"[fit] skipped: applying the saved workflow {cfg.workflow}")
        cards = list_cardinalities(workflow)
        log.say(f"  users: {cards[USER] - FIRST_ID:,}  items: {cards[ITEM] - FIRST_ID:,} (in the workflow's "
                "vocabularies)")
        import dask
        import nvtabular as nvt

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
        with log.stage("save", f"saving the workflow to {workflow_dir}" if applied is None else "writing the spec"):
            if workflow_tmp is not None:
                workflow.save(str(workflow_tmp))
            shutil.rmtree(scratch)
            encoding = encoding_metadata(workflow_dir, cfg.output, saved_at=workflow_tmp)
            spec = lists_spec(out, cards, encoding)
            spec.to_yaml(out / "feature_spec.yaml")
        stats = {
            "input": str(cfg.input), "format": fmt, "device": device, "layout": "lists",
            "users": cards[USER] - FIRST_ID, "items": cards[ITEM] - FIRST_ID, "cardinalities": cards, **totals,
            "heldout_users": len(validation), "min_positives": MIN_POSITIVES, "min_rating": cfg.min_rating,
            "seed": cfg.seed, "train_partitions": len(spec.source_spec["train"][0]["files"]),
            "workflow_dir": str(workflow_dir), "workflow_refit": applied is None,
            "workflow_id": encoding["workflow_id"], "timings_s": {**log.timings, "total": log.total},
        }
        (out / "stats.json").write_text(json.dumps(stats, indent=2))
    _summary(log, cfg, totals)
    return stats


def lists_spec(directory: Path, cards: dict, encoding: dict) -> FeatureSpec:
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


def _summary(log: StageLog, cfg, totals: dict) -> None:
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
    if totals["oov_rows_dropped"]:
        share = totals["oov_rows_dropped"] / totals["interactions"]
        log.say(f"note: {totals['oov_rows_dropped']:,} rows ({share:.1%}) have a user or item the workflow has never "
                "seen: dropped (out-of-vocabulary)")

"""`etl prepare` (`--split time`): the pairs layout for NCF, one row per (user, item, label).

After the workflow (workflows/pairs.py): shuffle the encoded rows by user, then per partition the
leave-latest-out split with verified test negatives (the rules are in `split`), written as
DATA_DIR/train|test|validation|known/part_*.parquet. Input without timestamps (or with one value for
every row) holds out a seeded random positive per user instead of the latest, and says so.
"""
from __future__ import annotations

import math
from pathlib import Path

from contract.errors import UserError
from workflows.pairs import build_workflow

from .backend import to_host
from .config import PARTITION_MULTIPLE, Layout, PrepareConfig
from .output_spec import encoded_spec
from .pipeline import encode
from .progress import StageLog, compute_with_progress
from .split import split_partition
from .workflow import fitted_cardinalities

SPLITS = ("train", "test", "validation", "known")


def write_partition(df, index: int, out: Path, item_cardinality: int, negatives: int, seed: int, validation: bool,
                    holdout: str):
    """Split one user-complete partition and write its train, test, validation and known files."""
    *frames, counts = split_partition(to_host(df), item_cardinality, negatives, seed, validation, holdout)
    for name, frame in zip(SPLITS, frames):
        if len(frame):
            frame.to_parquet(out / name / f"part_{index:05d}.parquet", index=False)
    return counts


def partition_count(encoded, partitions: int | None) -> int:
    """--partitions, else the input's partition count rounded up to a multiple of PARTITION_MULTIPLE."""
    return partitions or PARTITION_MULTIPLE * math.ceil(encoded.npartitions / PARTITION_MULTIPLE)


def shuffle_by_user(encoded, npartitions: int, client):
    """Every user's rows into one partition. One hash of the user id: frames shuffled into as many
    partitions by the same scheduler put each user in the same partition (etl/given.py relies on it)."""
    # The local scheduler's disk shuffle spills (100M rows: 2.3 GB peak RSS vs 4.9 GB in memory);
    # a distributed cluster shuffles between its workers.
    method = "disk" if client is None else "tasks"
    return encoded.shuffle("user_id", npartitions=npartitions, shuffle=method)


def holdout_rule(dataset, client) -> str:
    """"latest" where the timestamps tell interactions apart, else "random" (absent: all 0; or all one value)."""
    column = dataset.to_ddf()["timestamp"]
    low, high = (client.compute([column.min(), column.max()], sync=True) if client is not None
                 else [v.compute() for v in (column.min(), column.max())])
    return "latest" if low != high else "random"


def split(cfg: PrepareConfig, workflow, dataset, cards: dict, out: Path, client, device: str, log: StageLog):
    holdout = holdout_rule(dataset, client)
    if holdout == "random":
        log.say(f"note: {cfg.input} has no timestamps (no column '{cfg.columns.timestamp}', or one value throughout): "
                f"each user's test and validation positives are seeded random ones (--seed {cfg.seed}), not the "
                "latest; name the column with --timestamp-col if it has another name")
    with log.stage("split", f"dedup, leave-{holdout}-out split, verified negatives, parquet"):
        encoded = encode(workflow, dataset)
        by_user = shuffle_by_user(encoded, partition_count(encoded, cfg.partitions), client)
        for name in SPLITS:
            (out / name).mkdir()
        import dask

        tasks = [
            dask.delayed(write_partition)(part, i, out, cards["item_id"], cfg.negatives, cfg.seed, cfg.validation,
                                          holdout)
            for i, part in enumerate(by_user.to_delayed())
        ]
        counts = compute_with_progress(*tasks, client=client, quiet=cfg.quiet)
    totals = {key: sum(c[key] for c in counts) for key in counts[0]}
    _check_positives(cfg, totals)
    return totals, {"negatives_per_series": cfg.negatives, "holdout": {"rule": holdout, "seed": cfg.seed}}


def spec(out: Path, cards: dict, encoding: dict, cfg: PrepareConfig, layout_stats: dict):
    folders = {name: name for name in SPLITS if any((out / name).iterdir())}
    found = encoded_spec(out, cards, folders, encoding, cfg.negatives + 1)
    found.metadata["holdout"] = layout_stats["holdout"]  # which positive each test/validation series holds
    return found


def _check(workflow, where) -> None:
    fitted_cardinalities(workflow)  # refuses a lists workflow


def _check_positives(cfg: PrepareConfig, totals: dict) -> None:
    if totals["train_rows"] + totals["test_series"] == 0:
        rule = f"at or above --min-rating {cfg.min_rating}" if cfg.min_rating is not None else "positive"
        if cfg.workflow is not None:
            rule = f"positive under workflow {cfg.workflow} with ids it knows"
        raise UserError(f"{cfg.input} holds no interactions {rule}")
    if totals["test_series"] == 0:
        raise UserError("no user has two or more positive interactions, so there is nothing to hold out for testing")


def _summary(log: StageLog, cfg: PrepareConfig, stats: dict) -> None:
    held = "latest" if stats["holdout"]["rule"] == "latest" else "seeded random"
    log.say(
        f"prepared {cfg.output}: {stats['train_rows']:,} train rows, {stats['test_series']:,} test and "
        f"{stats['validation_series']:,} validation series x {cfg.negatives + 1} (each user's {held} positive), "
        f"{stats['users']:,} users, "
        f"{stats['items']:,} items, {stats['known_pairs']:,} known non-positive pairs, "
        f"{stats['duplicates_dropped']:,} duplicates dropped, {log.total:.1f}s"
    )
    if stats["saturated_users"]:
        log.say(f"note: {stats['saturated_users']:,} user(s) have fewer than --negatives {cfg.negatives} unseen "
                "items: they have no test or validation series (those positives stay in train); see stats.json")


LAYOUT = Layout(
    fitting="positive label, Categorify user and item ids", build=build_workflow, check=_check,
    cardinalities=fitted_cardinalities, split=split, spec=spec, summary=_summary, timestamp_optional=True,
)

"""`etl prepare`: raw ratings -> train/test/known parquet, feature_spec.yaml, stats.json, saved workflow.

With `workflow` set, a saved workflow encodes the data instead of a newly fitted one (no refit):
the split and test series are made as usual, and rows with ids it has never seen are counted
and dropped.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from contract.atomic import atomic_dir
from contract.errors import UserError

from .backend import dask_client, resolve_device, to_host
from .lists import prepare_lists
from .output_spec import encoded_spec, encoding_metadata
from .pipeline import RawInput, encode, stage
from .progress import StageLog, compute_with_progress
from .readers import ColumnNames
from .split import split_partition
from .workflow import FIRST_ID, build_workflow, fitted_cardinalities, load_workflow

# Train partitions come in multiples of this so 1, 2, 4 or 8 ranks get equal shares.
PARTITION_MULTIPLE = 8
WORKFLOW_FOLDER = "workflow"


@dataclass
class PrepareConfig:
    input: Path
    output: Path
    format: str = "auto"
    workflow_dir: Path | None = None  # where to save the fitted workflow; default OUTPUT/workflow
    workflow: Path | None = None  # a saved workflow to apply instead of fitting one
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

    @property
    def fitted_workflow_dir(self) -> Path | None:
        """Where the fitted workflow is saved: with its data unless --workflow-dir says otherwise."""
        if self.workflow is not None:
            return None
        return self.workflow_dir or self.output / WORKFLOW_FOLDER

    def __post_init__(self):
        self.input, self.output = Path(self.input), Path(self.output)
        self.workflow_dir = Path(self.workflow_dir) if self.workflow_dir else None
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


def write_partition(df, index: int, out: Path, item_cardinality: int, negatives: int, seed: int, validation: bool):
    """Split one user-complete partition and write its train, test, validation and known files."""
    *frames, counts = split_partition(to_host(df), item_cardinality, negatives, seed, validation)
    for name, frame in zip(SPLITS, frames):
        if len(frame):
            frame.to_parquet(out / name / f"part_{index:05d}.parquet", index=False)
    return counts


SPLITS = ("train", "test", "validation", "known")


def prepare(cfg: PrepareConfig) -> dict:
    if cfg.split != "time" or cfg.heldout_users is not None:
        return prepare_lists(cfg)
    log = StageLog(cfg.quiet)
    device = resolve_device(cfg.device)
    applied = load_workflow(cfg.workflow) if cfg.workflow is not None else None
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(device, cfg.workers, cfg.scheduler))
        out = stack.enter_context(atomic_dir(cfg.output, cfg.overwrite))
        if applied is not None:
            workflow_dir, workflow_tmp = cfg.workflow, None
        elif cfg.workflow_dir is None:  # inside the output: replaced with it, never shared by name
            workflow_dir, workflow_tmp = cfg.fitted_workflow_dir, out / WORKFLOW_FOLDER
        else:
            workflow_dir = cfg.workflow_dir
            workflow_tmp = stack.enter_context(atomic_dir(cfg.workflow_dir, cfg.overwrite))
        scratch = out / "_scratch"
        with log.stage("read", f"reading {cfg.input} ({cfg.format}) into typed parquet"):
            dataset, fmt = stage(RawInput(cfg.input, cfg.format, cfg.columns), scratch, device, client, cfg.quiet)
        if applied is None:
            with log.stage("fit", "fitting the NVTabular workflow (positive label, Categorify user and item ids)"):
                workflow = build_workflow(scratch / "vocab", cfg.min_rating)
                workflow.fit(dataset)
        else:
            workflow = applied
            log.say(f"[fit] skipped: applying the saved workflow {cfg.workflow}")
        cards = fitted_cardinalities(workflow)
        users, items = cards["user_id"] - FIRST_ID, cards["item_id"] - FIRST_ID
        log.say(f"  users: {users:,}  items: {items:,} (in the workflow's vocabularies)")
        with log.stage("split", "dedup, leave-latest-out split, verified negatives, parquet"):
            encoded = encode(workflow, dataset)
            nparts = cfg.partitions or PARTITION_MULTIPLE * math.ceil(encoded.npartitions / PARTITION_MULTIPLE)
            # The local scheduler's disk shuffle spills (100M rows: 2.3 GB peak RSS vs 4.9 GB in memory);
            # a distributed cluster shuffles between its workers.
            method = "disk" if client is None else "tasks"
            by_user = encoded.shuffle("user_id", npartitions=nparts, shuffle=method)
            for name in SPLITS:
                (out / name).mkdir()
            import dask

            tasks = [
                dask.delayed(write_partition)(part, i, out, cards["item_id"], cfg.negatives, cfg.seed, cfg.validation)
                for i, part in enumerate(by_user.to_delayed())
            ]
            counts = compute_with_progress(*tasks, client=client, quiet=cfg.quiet)
        totals = {key: sum(c[key] for c in counts) for key in counts[0]}
        _check_positives(cfg, totals)
        with log.stage("save", f"saving the workflow to {workflow_dir}" if applied is None else "writing the spec"):
            if workflow_tmp is not None:
                workflow.save(str(workflow_tmp))
            shutil.rmtree(scratch)
            encoding = encoding_metadata(workflow_dir, cfg.output, saved_at=workflow_tmp)
            folders = {name: name for name in SPLITS if any((out / name).iterdir())}
            spec = encoded_spec(out, cards, folders, encoding, cfg.negatives + 1)
            spec.to_yaml(out / "feature_spec.yaml")
        stats = {
            "input": str(cfg.input), "format": fmt, "device": device, "users": users, "items": items,
            "cardinalities": cards, **totals,
            "negatives_per_series": cfg.negatives, "min_rating": cfg.min_rating, "seed": cfg.seed,
            "train_partitions": len(spec.source_spec["train"][0]["files"]),
            "workflow_dir": str(workflow_dir), "workflow_refit": applied is None,
            "workflow_id": encoding["workflow_id"], "timings_s": {**log.timings, "total": log.total},
        }
        (out / "stats.json").write_text(json.dumps(stats, indent=2))
    _summary(log, cfg, totals, users, items)
    return stats


def _check_positives(cfg: PrepareConfig, totals: dict) -> None:
    if totals["train_rows"] + totals["test_series"] == 0:
        rule = f"at or above --min-rating {cfg.min_rating}" if cfg.min_rating is not None else "positive"
        if cfg.workflow is not None:
            rule = f"positive under workflow {cfg.workflow} with ids it knows"
        raise UserError(f"{cfg.input} holds no interactions {rule}")
    if totals["test_series"] == 0:
        raise UserError("no user has two or more positive interactions, so there is nothing to hold out for testing")


def _summary(log: StageLog, cfg: PrepareConfig, totals: dict, users: int, items: int) -> None:
    log.say(
        f"prepared {cfg.output}: {totals['train_rows']:,} train rows, {totals['test_series']:,} test and "
        f"{totals['validation_series']:,} validation series x {cfg.negatives + 1}, {users:,} users, {items:,} items, "
        f"{totals['known_pairs']:,} known non-positive pairs, {totals['duplicates_dropped']:,} duplicates dropped, "
        f"{log.total:.1f}s"
    )
    if totals["saturated_users"]:
        log.say(f"note: {totals['saturated_users']:,} user(s) have fewer than --negatives {cfg.negatives} unseen "
                "items: they have no test or validation series (those positives stay in train); see stats.json")
    if totals["oov_rows_dropped"]:
        share = totals["oov_rows_dropped"] / totals["interactions"]
        log.say(f"note: {totals['oov_rows_dropped']:,} rows ({share:.1%}) have a user or item the workflow has never "
                "seen: dropped (out-of-vocabulary)")

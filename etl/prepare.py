"""`etl prepare`: raw ratings -> train/test/known parquet, feature_spec.yaml, stats.json, saved workflow.

The one entry point for both data layouts: `--split time` (pairs, etl/pairs.py) and `--split users`
(lists, etl/lists.py). Everything but the layout's graph (workflows/) and its split, spec and summary
is written once here: read the input, fit a new workflow or load a saved one (`--workflow`) and
check it, split and write into a temporary folder renamed into place at the end, save the fitted
workflow, the FeatureSpec and stats.json. With `workflow` set, the saved workflow encodes the data
instead of a newly fitted one (no refit): the split is made as usual, and rows with ids it has
never seen are counted and dropped. With `grow` as well, the saved workflow's vocabularies are
extended by those ids instead (etl/grow.py) and the grown workflow is saved with the data.

With `test_input` (and `validation_input`) the split is the user's own files (etl/given.py, a branch of the
pairs layout): the workflow is fitted on `input` (the train file) only and applied to the test and validation
files, whose unseen ids, train pairs and repeats are counted, said and dropped; test and validation hold
positive pairs only, ranked against the whole catalogue (`metadata.protocol.split: given`).
"""
from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import replace

from contract.atomic import atomic_dir
from contract.errors import UserError

from . import given, lists, pairs
from .backend import dask_client, resolve_device
from .config import SCRATCH_FOLDER, WORKFLOW_FOLDER, Layout, PrepareConfig
from .grow import grow, write_lineage
from .output_spec import encoding_metadata
from .pipeline import RawInput, stage
from .progress import StageLog
from .workflow import FIRST_ID, load_workflow, positive_rule

__all__ = ["PrepareConfig", "prepare"]

LAYOUTS = {"time": pairs.LAYOUT, "users": lists.LAYOUT}  # --split -> layout


def layout(cfg: PrepareConfig) -> Layout:
    if cfg.test_input is not None:
        given.check(cfg)
    if cfg.split == "time" and cfg.heldout_users is not None:
        raise UserError("--heldout-users applies to --split users, not --split time")
    if cfg.split not in LAYOUTS:
        raise UserError(f"unknown --split {cfg.split!r}; choose time or users")
    return given.LAYOUT if cfg.test_input is not None else LAYOUTS[cfg.split]


def prepare(cfg: PrepareConfig) -> dict:
    chosen = layout(cfg)
    log = StageLog(cfg.quiet)
    device = resolve_device(cfg.device)
    applied = load_workflow(cfg.workflow) if cfg.workflow is not None else None
    if applied is not None:
        chosen.check(applied, cfg.workflow)
    columns = replace(cfg.columns, timestamp_optional=True) if chosen.timestamp_optional else cfg.columns
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(device, cfg.workers, cfg.scheduler))
        out = stack.enter_context(atomic_dir(cfg.output, cfg.overwrite))
        if applied is not None and not cfg.grow:
            workflow_dir, workflow_tmp = cfg.workflow, None
        elif cfg.workflow_dir is None:  # inside the output: replaced with it, never shared by name
            workflow_dir, workflow_tmp = cfg.fitted_workflow_dir, out / WORKFLOW_FOLDER
        else:
            workflow_dir = cfg.workflow_dir
            workflow_tmp = stack.enter_context(atomic_dir(cfg.workflow_dir, cfg.overwrite))
        scratch = out / SCRATCH_FOLDER
        with log.stage("read", f"reading {cfg.input} ({cfg.format}) into typed parquet"):
            dataset, fmt = stage(RawInput(cfg.input, cfg.format, columns), scratch, device, client, cfg.quiet)
        min_rating = cfg.min_rating if applied is None else positive_rule(applied)
        growth = None
        if applied is None:
            with log.stage("fit", f"fitting the NVTabular workflow ({chosen.fitting})"):
                workflow = chosen.build(scratch / "vocab", cfg.min_rating)
                workflow.fit(dataset)
        elif cfg.grow:
            with log.stage("grow", f"extending the vocabularies of {cfg.workflow} by the new users and items"):
                growth = grow(cfg.workflow, chosen.cardinalities(applied), dataset, client, cfg.input)
                workflow = chosen.build(scratch / "vocab", min_rating, growth.vocabs)
                workflow.fit(dataset)  # nothing to learn: the vocabularies are pinned
        else:
            workflow = applied
            log.say(f"[fit] skipped: applying the saved workflow {cfg.workflow}")
        cards = chosen.cardinalities(workflow)
        users, items = cards["user_id"] - FIRST_ID, cards["item_id"] - FIRST_ID
        log.say(f"  users: {users:,}  items: {items:,} (in the workflow's vocabularies)")
        totals, layout_stats = chosen.split(cfg, workflow, dataset, cards, out, client, device, log)
        with log.stage("save", f"saving the workflow to {workflow_dir}" if workflow_tmp else "writing the spec"):
            if workflow_tmp is not None:
                workflow.save(str(workflow_tmp))
                if growth is not None:
                    write_lineage(workflow_tmp, growth)
            shutil.rmtree(scratch)
            encoding = encoding_metadata(workflow_dir, cfg.output, saved_at=workflow_tmp)
            if growth is not None:
                encoding["extends"] = growth.extends
            spec = chosen.spec(out, cards, encoding, cfg, layout_stats)
            spec.to_yaml(out / "feature_spec.yaml")
        stats = {
            "input": str(cfg.input), "format": fmt, "device": device, **({"layout": chosen.name} if chosen.name else {}),
            "users": users, "items": items, "cardinalities": cards, **totals, **layout_stats,
            "min_rating": min_rating, "seed": cfg.seed, "train_partitions": len(spec.source_spec["train"][0]["files"]),
            "workflow_dir": str(workflow_dir), "workflow_refit": applied is None,
            "workflow_id": encoding["workflow_id"], **({"grown": growth.stats()} if growth else {}),
            "timings_s": {**log.timings, "total": log.total},
        }
        (out / "stats.json").write_text(json.dumps(stats, indent=2))
    chosen.summary(log, cfg, stats)
    if growth is not None:
        before = growth.extends[0]["cardinalities"]
        log.say(f"grew {cfg.workflow}: {growth.added['users']:,} new users and {growth.added['items']:,} new items "
                f"appended after its indices (user/item tables {before['users']:,}/{before['items']:,} -> "
                f"{cards['user_id']:,}/{cards['item_id']:,}); the grown workflow is {workflow_dir}")
    if stats.get("oov_rows_dropped"):  # a given split says its test and validation files' own (etl/given.py)
        share = stats["oov_rows_dropped"] / stats["interactions"]
        log.say(f"note: {stats['oov_rows_dropped']:,} rows ({share:.1%}) have a user or item the workflow has never "
                "seen: dropped (out-of-vocabulary)")
    return stats

"""`etl prepare --input TRAIN --test-input TEST [--validation-input VALID]`: the pairs layout on a user's own split.

The public full-ranking benchmarks (LightGCN, NGCF, SimpleX, UltraGCN) ship their split as files, often in
the per-user `lines` format (`user item item ...`, etl/readers.py); any format the readers take is accepted
for each file (each one's detected on its own under `--format auto`; an explicit `--format` applies to all).
Nothing is held out here, the files are the split:

- The pairs workflow (workflows/pairs.py, the same `--min-rating` rule) is fitted on TRAIN only (by
  `prepare`) and applied to TEST and VALID; neither ever changes train nor the vocabularies.
- TRAIN's positives, deduplicated, go to DATA_DIR/train (shuffled by user, as the leave-latest-out split
  writes them), its interactions below the rule to known/, as the pairs layout does.
- TEST and VALID become positive pairs (label 1) only, several per user, no sampled negatives: each user's
  rows in one part file, sorted by user then item (test/ and validation/part_*.parquet).
- A TEST or VALID row is dropped, counted in stats.json and said (one line per reason and file) for the
  first of: a user or item TRAIN does not have (out of vocabulary); a rating below --min-rating; a repeat of
  a pair earlier in the same file; a pair that is a train positive (no test pair is ever a train pair); a
  pair TRAIN has below the rule (known: never a candidate, so never rankable); and for VALID, a TEST pair
  (test stays as given, and evaluation takes validation items out of test's candidates).
- The FeatureSpec has no `test_samples_per_series`: `metadata.protocol` = {split: given, train, test,
  validation} tells training to rank each user's test items against the whole catalogue.

Every user of TEST and VALID is in one partition of theirs and in the same partition of TRAIN (one hash of
the encoded user id, etl/pairs.py), so each partition is checked against the train pairs of its own users.
Refused, in one line: a test or validation file that is missing, empty, unreadable, or shares no (user,
item) with train; one with nothing left once the rows above are dropped; `--split users`, `--workflow`/
`--grow` (the workflow is fitted on TRAIN here) and, on the command line, `--negatives`/`--validation`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from contract.errors import UserError

from . import pairs
from .backend import to_host
from .config import SCRATCH_FOLDER, PrepareConfig
from .output_spec import encoded_spec
from .pipeline import RawInput, encode, stage
from .progress import StageLog, compute_with_progress
from .split import _known_pairs, _pairs, dedup
from .workflow import FIRST_ID

HELD_OUT = {"test": "--test-input", "validation": "--validation-input"}  # mapping -> its flag
FOLDERS = ("train", "test", "validation", "known")
# Why a held-out row is dropped, in the order the reasons are checked (stats.json keys: f"{reason}_dropped").
AGAINST = {"in_train": "are train positives (a held-out pair is never a train pair)",
           "in_known": "are train interactions below the positive rule (known to the user, so never a candidate)",
           "in_test": "are also test pairs (test stays as given)"}


def held_out_inputs(cfg: PrepareConfig) -> dict[str, Path]:
    """{"test": TEST, "validation": VALID} as given (validation only when given)."""
    files = {"test": cfg.test_input, "validation": cfg.validation_input}
    return {mapping: path for mapping, path in files.items() if path is not None}


def check(cfg: PrepareConfig) -> None:
    """Before anything is read or fitted: the refusals that need no data."""
    if cfg.split == "users":
        raise UserError("--test-input gives the test pairs; --split users holds out whole users of one input "
                        "instead: leave one of them out")
    for mapping, path in held_out_inputs(cfg).items():
        if not path.exists():
            raise UserError(f"{HELD_OUT[mapping]} {path} does not exist")


def protocol(cfg: PrepareConfig) -> dict:
    """metadata.protocol of the FeatureSpec: which files the split came from."""
    return {"split": "given", "train": str(cfg.input), "test": str(cfg.test_input),
            "validation": str(cfg.validation_input) if cfg.validation_input is not None else None}


# ---- per partition ------------------------------------------------------------------------------
def write_partition(train, test, validation, index: int, out: Path, item_cardinality: int) -> dict:
    """Train, known, test and validation files of one partition: the same users in each frame."""
    name = f"part_{index:05d}.parquet"
    train = to_host(train)
    users, items = train["user_id"].to_numpy(np.int64), train["item_id"].to_numpy(np.int64)
    positive = train["label"].to_numpy() > 0
    u, i, _, duplicates = dedup(users[positive], items[positive], train["timestamp"].to_numpy()[positive])
    known_u, known_i = _known_pairs(users[~positive], items[~positive], u, i, item_cardinality)
    counts = {"interactions": len(users), "train_rows": len(u), "train_users": len(np.unique(u)),
              "duplicates_dropped": duplicates, "known_pairs": len(known_u)}
    _write(_pairs(u, i, 1.0), out / "train" / name)
    _write(_pairs(known_u, known_i, 0.0), out / "known" / name)
    against = {"in_train": u * item_cardinality + i, "in_known": known_u * item_cardinality + known_i}
    for mapping, frame in (("test", test), ("validation", validation)):
        if frame is None:
            continue
        keys, counts[mapping] = held_out_pairs(to_host(frame), item_cardinality, against)
        _write(_pairs(keys // item_cardinality, keys % item_cardinality, 1.0), out / mapping / name)
        against["in_test"] = keys  # validation's last check
    return counts


def held_out_pairs(df: pd.DataFrame, item_cardinality: int, against: dict) -> tuple[np.ndarray, dict]:
    """(sorted unique user * item_cardinality + item keys kept, counts) of one encoded held-out partition.

    Each dropped row is counted once, under the first reason that applies: out of vocabulary, below the
    positive rule, a repeat in the file, then each of `against` (sorted keys) in order.
    """
    users, items = df["user_id"].to_numpy(np.int64), df["item_id"].to_numpy(np.int64)
    unseen_user, unseen_item = users < FIRST_ID, items < FIRST_ID
    oov = unseen_user | unseen_item
    below = ~oov & ~(df["label"].to_numpy() > 0)
    every = users[~oov & ~below] * item_cardinality + items[~oov & ~below]
    keys = np.unique(every)
    counts = {"rows_read": len(users), "oov_rows_dropped": int(oov.sum()), "oov_user_rows": int(unseen_user.sum()),
              "oov_item_rows": int(unseen_item.sum()), "below_min_rating_dropped": int(below.sum()),
              "duplicates_dropped": len(every) - len(keys)}
    for reason, other in against.items():
        hit = np.isin(keys, other)
        counts[f"{reason}_dropped"] = int(hit.sum())
        keys = keys[~hit]
    counts.update(rows=len(keys), users=len(np.unique(keys // item_cardinality)))
    return keys, counts


def _write(frame: pd.DataFrame, path: Path) -> None:
    if len(frame):
        frame.to_parquet(path, index=False)


# ---- the layout's steps (prepare calls them) ----------------------------------------------------
def split(cfg: PrepareConfig, workflow, dataset, cards: dict, out: Path, client, device: str, log: StageLog):
    files = held_out_inputs(cfg)
    scratch = out / SCRATCH_FOLDER
    columns = replace(cfg.columns, timestamp_optional=True)
    staged, formats = {}, {}
    for mapping, path in files.items():
        with log.stage(f"read_{mapping}", f"reading {path} ({cfg.format}) into typed parquet"):
            try:
                staged[mapping], formats[mapping] = stage(RawInput(path, cfg.format, columns), scratch / mapping,
                                                          device, client, cfg.quiet)
            except UserError as exc:
                raise UserError(f"{HELD_OUT[mapping]}: {exc}") from None
    with log.stage("split", "train positives by user; test" + (" and validation" if len(files) > 1 else "")
                   + " pairs checked against them, parquet"):
        encoded = encode(workflow, dataset)
        nparts = pairs.partition_count(encoded, cfg.partitions)
        frames = {"train": encoded, **{m: encode(workflow, _like_train(staged[m], dataset, files[m], cfg.input, device))
                                       for m in staged}}
        by_user = {m: pairs.shuffle_by_user(frame, nparts, client).to_delayed() for m, frame in frames.items()}
        for folder in FOLDERS:
            if folder in ("train", "known") or folder in files:
                (out / folder).mkdir()
        import dask

        tasks = [dask.delayed(write_partition)(part, by_user["test"][i],
                                               by_user["validation"][i] if "validation" in by_user else None,
                                               i, out, cards["item_id"])
                 for i, part in enumerate(by_user["train"])]
        counts = compute_with_progress(*tasks, client=client, quiet=cfg.quiet)
    totals = {key: sum(c[key] for c in counts) for key in ("interactions", "train_rows", "train_users",
                                                           "duplicates_dropped", "known_pairs")}
    per_file = {}
    for mapping, path in files.items():
        summed = {key: sum(c[mapping][key] for c in counts) for key in counts[0][mapping]}
        per_file[mapping] = {"input": str(path), "format": formats[mapping], **summed}
        totals.update({f"{mapping}_rows": summed["rows"], f"{mapping}_users": summed["users"]})
    _refuse_empty(cfg, totals, per_file)
    return totals, {"protocol": protocol(cfg), "files": per_file}


def _like_train(held, train, path: Path, train_path: Path, device: str):
    """The held-out data with ids of the train data's kind: string vocabularies match integer ids as text."""
    import nvtabular as nvt

    ddf, kinds = held.to_ddf(), train.to_ddf().dtypes
    cast = {}
    for column in ("user_id", "item_id"):
        trained, read = (pd.api.types.is_integer_dtype(d) for d in (kinds[column], ddf[column].dtype))
        if read and not trained:
            cast[column] = str
        elif trained and not read:
            raise UserError(f"{path} has ids that are not integers (read as text: its first rows hold one that is "
                            f"not) while those of the train file {train_path} are integers; they cannot be the same ids")
    return nvt.Dataset(ddf.astype(cast), cpu=device == "cpu") if cast else held


def _refuse_empty(cfg: PrepareConfig, totals: dict, per_file: dict) -> None:
    if totals["train_rows"] == 0:
        rule = f"at or above --min-rating {cfg.min_rating}" if cfg.min_rating is not None else "positive"
        raise UserError(f"the train file {cfg.input} holds no interactions {rule}")
    for mapping, found in per_file.items():
        flag = f"{HELD_OUT[mapping]} {found['input']}"
        if found["oov_rows_dropped"] == found["rows_read"]:
            raise UserError(f"{flag}: none of its {found['rows_read']:,} rows has both a user and an item of the "
                            f"train file {cfg.input} ({found['oov_user_rows']:,} with an unseen user, "
                            f"{found['oov_item_rows']:,} with an unseen item): not a split of the same ids")
        if found["rows"] == 0:
            why = ", ".join(f"{found[key]:,} {key.removesuffix('_dropped').replace('_', ' ')}" for key in found
                            if key.endswith("_dropped") and found[key])
            raise UserError(f"{flag}: no pair left to evaluate of its {found['rows_read']:,} rows ({why})")


def spec(out: Path, cards: dict, encoding: dict, cfg: PrepareConfig, layout_stats: dict):
    folders = {name: name for name in FOLDERS if (out / name).is_dir() and any((out / name).iterdir())}
    found = encoded_spec(out, cards, folders, encoding)  # no test_samples_per_series: positives only
    found.metadata["protocol"] = layout_stats["protocol"]
    return found


def summary(log: StageLog, cfg: PrepareConfig, stats: dict) -> None:
    held = ", ".join(f"{stats[f'{m}_rows']:,} {m} pairs of {stats[f'{m}_users']:,} users" for m in stats["files"])
    log.say(f"prepared {cfg.output} from a given split: {stats['train_rows']:,} train rows of "
            f"{stats['train_users']:,} users, {held} (positives only, ranked against every item), "
            f"{stats['users']:,} users, {stats['items']:,} items (the train file's), {stats['known_pairs']:,} known "
            f"non-positive pairs, {stats['duplicates_dropped']:,} train duplicates dropped, {log.total:.1f}s")
    for mapping, found in stats["files"].items():
        for line in dropped_lines(found, cfg.min_rating):
            log.say(f"note: {HELD_OUT[mapping]} {found['input']}: {line}")


def dropped_lines(found: dict, min_rating: float | None) -> list[str]:
    """One line per reason a held-out file lost rows (none for a reason that dropped nothing)."""
    def share(key):
        return f"{found[key]:,} rows ({found[key] / found['rows_read']:.1%})"

    lines = []
    if found["oov_rows_dropped"]:
        lines.append(f"{share('oov_rows_dropped')} have a user or item the train file does not "
                     f"({found['oov_user_rows']:,} with an unseen user, {found['oov_item_rows']:,} with an unseen item): "
                     "dropped (out-of-vocabulary)")
    if found["below_min_rating_dropped"]:
        lines.append(f"{share('below_min_rating_dropped')} are rated below --min-rating {min_rating}: dropped "
                     "(not positives)")
    if found["duplicates_dropped"]:
        lines.append(f"{share('duplicates_dropped')} repeat a pair of the same file: dropped (kept once)")
    for reason, what in AGAINST.items():
        if found.get(f"{reason}_dropped"):
            lines.append(f"{share(f'{reason}_dropped')} {what}: dropped")
    return lines


LAYOUT = replace(pairs.LAYOUT, fitting="positive label, Categorify user and item ids, on the train file only",
                 split=split, spec=spec, summary=summary)

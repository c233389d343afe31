"""python -m etl {synthetic,download,prepare,transform} ...

`prepare --input TRAIN --test-input TEST [--validation-input VALID]` prepares a given split (the user's own
files, e.g. a benchmark's train.txt/test.txt in the per-user `lines` format): the workflow is fitted on TRAIN
only and applied to the others; their rows with unseen users or items, pairs already in train and repeats are
counted, said and dropped; test and validation hold positive pairs only (no sampled negatives).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contract.console import entry_point

from .readers import FORMATS, ColumnNames


def _add_columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto: from the name, and for a headerless .txt/.csv/.tsv of integers of varying lengths (or "
                        "more than 4 per line), lines; lines: one line per user, `user item item ...` separated by "
                        "whitespace (LightGCN/NGCF/SimpleX/UltraGCN's train.txt, test.txt). prepare --test-input: "
                        "auto detects each file's format on its own; a named one applies to every file")
    p.add_argument("--user-col", default="userId", help="user id column of a generic CSV/parquet")
    p.add_argument("--item-col", default="movieId", help="item id column of a generic CSV/parquet")
    p.add_argument("--timestamp-col", default="timestamp")
    p.add_argument("--rating-col", default="rating", help="optional; every row is a positive without it")
    p.add_argument("--sep", help="separator of a generic CSV, '\\t' for a tab (default: detected from the header "
                                 "line among , \\t ; |)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m etl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthetic", help="write MovieLens-like ratings (ml-20m ratings.csv layout)")
    p.add_argument("--output", required=True, help="ratings.csv or a .parquet file")
    p.add_argument("--users", type=int, default=6040)
    p.add_argument("--items", type=int, default=3700)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--genres", type=int, default=18)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("download", help="fetch an official MovieLens zip")
    p.add_argument("name", choices=("ml-100k", "ml-1m", "ml-20m", "ml-25m"))
    p.add_argument("--dest", default="data/raw")

    p = sub.add_parser("prepare", help="raw ratings -> train/test parquet + feature_spec.yaml + workflow",
                       description="Raw ratings -> DATA_DIR: train/test(/validation/known) parquet, feature_spec.yaml, "
                                   "stats.json and the fitted workflow. Either one input split by time (each user's "
                                   "latest positive held out, with sampled negatives) or by users (--split users), "
                                   "or a given split: --input TRAIN --test-input TEST [--validation-input VALID].")
    p.add_argument("--input", required=True, help="MovieLens zip/folder/file, or any CSV/parquet/lines file; with "
                                                  "--test-input, the train file (the workflow is fitted on it only)")
    p.add_argument("--test-input", help="a given split's test file (any format --input takes): encoded with the "
                                        "workflow fitted on --input; rows with a user or item --input lacks, pairs "
                                        "that are train interactions and repeats are counted, said and dropped; the "
                                        "rest are positive test pairs, several per user, ranked against every item "
                                        "(no sampled negatives); --negatives and --validation do not apply")
    p.add_argument("--validation-input", help="with --test-input: the given split's validation file, treated as the "
                                              "test file is; its pairs that are also test pairs are dropped from it")
    p.add_argument("--output", required=True, help="DATA_DIR to create")
    fit = p.add_mutually_exclusive_group()
    fit.add_argument("--workflow-dir", help="where to save the fitted workflow (default: OUTPUT/workflow)")
    fit.add_argument("--workflow", help="encode with this saved workflow instead of fitting one (no refit; "
                                        "rows with unseen ids are counted and dropped)")
    p.add_argument("--grow", action="store_true", help="with --workflow: extend its vocabularies by the new users "
                                                       "and items (appended after its indices, so data it encoded "
                                                       "stays valid) instead of dropping their rows; the grown "
                                                       "workflow is saved in OUTPUT/workflow")
    p.add_argument("--negatives", type=int, help="verified negatives per test series (default: 100; not with "
                                                 "--test-input)")
    p.add_argument("--validation", action=argparse.BooleanOptionalAction,
                   help="also hold out each user's second-latest positive as a validation series (default: on; not "
                        "with --test-input, where --validation-input gives it)")
    p.add_argument("--min-rating", type=float, help="ratings >= R are positives; the others stay known to the "
                                                    "user, never recommended (default: every rating is a positive)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partitions", type=int, help="train/test partitions (default: a multiple of 8)")
    p.add_argument("--split", choices=("time", "users"), default="time",
                   help="time: leave-latest-out pairs with test negatives (NCF); users: per-user item lists with "
                        "held-out validation and test users, each split into fold-in and target lists (VAE-CF)")
    p.add_argument("--heldout-users", type=int, help="--split users: N validation users and N test users "
                                                     "(default: 10%% of the users with 5+ positives, each)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="start a local Dask cluster with N workers")
    where.add_argument("--scheduler", help="address of a running Dask scheduler")
    _add_columns(p)

    p = sub.add_parser("transform", help="apply a saved workflow to new raw data (no refit)")
    p.add_argument("--workflow", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    _add_columns(p)
    return top


def _columns(args) -> ColumnNames:
    sep = "\t" if args.sep == r"\t" else args.sep  # a shell hands over '\t' as two characters
    return ColumnNames(args.user_col, args.item_col, args.timestamp_col, args.rating_col or None, sep)


def run(args) -> None:
    if args.command == "synthetic":
        from tqdm import tqdm

        from contract.atomic import refuse_existing

        from .synthetic import generate

        refuse_existing(Path(args.output), args.overwrite)  # before the progress bar draws
        with tqdm(total=args.rows, unit="rows", unit_scale=True, desc="synthetic", file=sys.stderr) as bar:
            rows = generate(args.output, args.users, args.items, args.rows, args.seed, args.genres, bar.update,
                            args.overwrite)
        print(json.dumps({"output": args.output, "rows": rows}))
    elif args.command == "download":
        from .download import download

        print(download(args.name, args.dest))
    elif args.command == "prepare":
        from contract.errors import UserError

        from .prepare import PrepareConfig, prepare

        if args.test_input is not None:
            for flag, value in (("--negatives", args.negatives), ("--validation/--no-validation", args.validation)):
                if value is not None:
                    raise UserError(f"{flag} shapes a split made here; --test-input gives the split (positives only, "
                                    "no sampled negatives; validation from --validation-input): leave it out")
        cfg = PrepareConfig(
            input=args.input, output=args.output, format=args.format, workflow_dir=args.workflow_dir,
            workflow=args.workflow, grow=args.grow, negatives=100 if args.negatives is None else args.negatives,
            validation=args.validation is not False, test_input=args.test_input,
            validation_input=args.validation_input,
            min_rating=args.min_rating, seed=args.seed,
            device=args.device, workers=args.workers, scheduler=args.scheduler, partitions=args.partitions,
            columns=_columns(args), overwrite=args.overwrite, quiet=args.quiet, split=args.split,
            heldout_users=args.heldout_users,
        )
        print(json.dumps(prepare(cfg)))
    else:
        from .transform import transform

        print(json.dumps(transform(args.workflow, args.input, args.output, args.format, _columns(args),
                                   args.device, args.overwrite, args.quiet)))


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # parse errors surfacing from Dask tasks are bad input too
    return entry_point(lambda: run(args), also=(UnicodeDecodeError, OSError, ValueError), prefix="cannot read input: ")


if __name__ == "__main__":
    sys.exit(main())

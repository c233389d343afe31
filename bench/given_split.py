"""python -m bench.given_split RATINGS OUT [--test 0.2] [--validation 0] [--seed 0] [--format lines|csv]:
a seeded per-user random split of a ratings file, written as given train/test (and validation) files, the way the
public full-ranking benchmarks ship theirs (LightGCN's `train.txt`/`test.txt`: one line per user).

Benchmarks and tuning only: real data is never committed, and nothing in the tests reads it. Every pair is
deduplicated; each user with at least 2 items keeps at least one in train and gives round(fraction x items)
(at least one) to test; users with one item stay in train. RATINGS: a CSV with a header (userId, movieId) or
MovieLens-100k's tab-separated `u.data`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def read_pairs(path: Path) -> pd.DataFrame:
    if path.name.startswith("u.data"):
        frame = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    else:
        frame = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"})
    return frame[["user", "item"]].drop_duplicates().sort_values(["user", "item"], ignore_index=True)


def split(pairs: pd.DataFrame, fractions: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """{"train": ..., name: ... for each fraction}: each user's items in a seeded random order, cut by fraction."""
    rng = np.random.default_rng(seed)
    shuffled = pairs.iloc[rng.permutation(len(pairs))].sort_values("user", kind="stable", ignore_index=True)
    position = shuffled.groupby("user").cumcount().to_numpy()
    size = shuffled.groupby("user")["item"].transform("size").to_numpy()
    parts, start = {}, np.zeros(len(shuffled), dtype=np.int64)
    for name, fraction in fractions.items():
        take = np.where(size >= 2, np.maximum(1, np.round(fraction * size)), 0).astype(np.int64)
        take = np.minimum(take, np.maximum(size - 1 - start, 0))  # at least one item stays in train
        parts[name] = shuffled[(position >= start) & (position < start + take)]
        start = start + take
    parts["train"] = shuffled[position >= start]
    return parts


def write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
        return
    with open(path, "w") as out:
        for user, items in frame.groupby("user")["item"]:
            out.write(f"{user} {' '.join(map(str, sorted(items)))}\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.given_split", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("ratings", type=Path)
    p.add_argument("out", type=Path, help="folder to create")
    p.add_argument("--test", type=float, default=0.2, help="share of each user's items in test")
    p.add_argument("--validation", type=float, default=0.0, help="share in a validation file (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("lines", "csv"), default="lines")
    args = p.parse_args(argv)
    fractions = {"test": args.test, **({"validation": args.validation} if args.validation else {})}
    parts = split(read_pairs(args.ratings), fractions, args.seed)
    args.out.mkdir(parents=True, exist_ok=False)
    suffix = "txt" if args.format == "lines" else "csv"
    for name, frame in parts.items():
        write(frame, args.out / f"{name}.{suffix}", args.format)
        print(f"{name}: {len(frame):,} pairs, {frame['user'].nunique():,} users", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

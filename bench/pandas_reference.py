"""The same ETL steps in plain pandas, single process: the baseline `etl prepare` is measured against.

Same semantics as etl/: frequency-ordered ids from 3, dedup keeping the earliest, the latest
interaction held out (ties: larger item index), verified negatives (the same sampler, so the
comparison is about the data frame engine, not the sampling algorithm), parquet out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from contract.holdout import sample_negatives
from etl.workflow import FIRST_ID


def encode(values: pd.Series) -> tuple[np.ndarray, int]:
    vocab = values.value_counts(sort=True).index
    return pd.Index(vocab).get_indexer(values) + FIRST_ID, len(vocab) + FIRST_ID


def prepare_pandas(source: Path, output: Path, negatives: int = 100, seed: int = 0) -> dict:
    begin = time.perf_counter()
    df = pd.read_csv(source, usecols=["userId", "movieId", "timestamp"], engine="c")
    users, _ = encode(df["userId"])
    items, item_card = encode(df["movieId"])
    df = pd.DataFrame({"u": users, "i": items, "t": df["timestamp"].to_numpy()})
    df = df.sort_values(["u", "i", "t"]).drop_duplicates(["u", "i"], keep="first")
    df = df.sort_values(["u", "t", "i"])
    last = ~df["u"].duplicated(keep="last")
    first = ~df["u"].duplicated(keep="first")
    held_out = (last & ~first).to_numpy()
    train, test = df[~held_out], df[held_out]
    negs = sample_negatives(test["u"].to_numpy(), df["u"].to_numpy(), df["i"].to_numpy(), item_card, negatives, seed,
                           FIRST_ID)
    series = pd.DataFrame({
        "user_id": np.repeat(test["u"].to_numpy(), negatives + 1),
        "item_id": np.column_stack([test["i"].to_numpy(), negs]).ravel(),
        "label": np.tile(np.r_[1.0, np.zeros(negatives)].astype(np.float32), len(test)),
    })
    output.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id": train["u"].to_numpy(), "item_id": train["i"].to_numpy(),
                  "label": np.ones(len(train), np.float32)}).to_parquet(output / "train.parquet", index=False)
    series.to_parquet(output / "test.parquet", index=False)
    return {"train_rows": len(train), "test_series": len(test), "seconds": time.perf_counter() - begin}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    args = p.parse_args()
    print(json.dumps(prepare_pandas(args.input, args.output)))

"""What a user would otherwise write for accuracy: the NCF paper's NeuMF recipe in plain PyTorch.

Reads a prepared pairs DATA_DIR (pandas: train positives, validation and test series of one positive and its
sampled negatives), trains `bench.bare_loop.PlainNeuMF` as He et al. 2017 do (8 factors, layers 64 32 16 8,
4 uniform negatives per positive drawn afresh each epoch, none of them the user's positives, batches of 256,
Adam 1e-3) and evaluates HR@10 and NDCG@10 on both splits after every epoch (ties count against the model).
Nothing from the project's training code is used: it is the yardstick for `python -m training` on the same split.
Prints a line per epoch and one JSON line: the test figures of the epoch with the best validation HR@10.

python -m bench.ncf_reference --data DATA_DIR [-e 20]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from .bare_loop import PlainNeuMF


def read(data: Path, split: str) -> pd.DataFrame:
    spec = yaml.safe_load((data / "feature_spec.yaml").read_text())
    files = [data / f for chunk in spec["source_spec"][split] for f in chunk["files"]]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def hit_rate(model: nn.Module, series: pd.DataFrame, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k of each user's positive among its negatives (negatives scoring >= it rank above it)."""
    with torch.no_grad():
        scores = model(torch.from_numpy(series["user_id"].to_numpy(np.int64)),
                       torch.from_numpy(series["item_id"].to_numpy(np.int64))).float().numpy()
    positive = series["label"].to_numpy() > 0
    by_user = pd.Series(scores[positive], index=series["user_id"].to_numpy()[positive])
    negatives = series[~positive]
    above = scores[~positive] >= by_user.reindex(negatives["user_id"].to_numpy()).to_numpy()
    rank = pd.Series(above, index=negatives["user_id"].to_numpy()).groupby(level=0).sum().to_numpy()
    return float((rank < k).mean()), float(np.where(rank < k, 1 / np.log2(rank + 2), 0.0).mean())


def negatives(rng, positives, users, items: int, first: int, per_positive: int) -> np.ndarray:
    """`per_positive` uniform items per train row, each drawn again while it is one of its user's positives
    (as the paper's code does); `positives` are the sorted keys user * items + item."""
    users = np.tile(users, per_positive)
    drawn = rng.integers(first, items, len(users))
    again = np.isin(users * items + drawn, positives)
    while again.any():
        drawn[again] = rng.integers(first, items, int(again.sum()))
        again[again] = np.isin(users[again] * items + drawn[again], positives)
    return drawn


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a prepared pairs DATA_DIR with validation and test")
    p.add_argument("-e", "--epochs", type=int, default=20)
    p.add_argument("-b", "--batch_size", type=int, default=256)
    p.add_argument("-l", "--learning_rate", type=float, default=0.001)
    p.add_argument("-f", "--factors", type=int, default=8)
    p.add_argument("--layers", type=int, nargs="+", default=[64, 32, 16, 8])
    p.add_argument("-n", "--negatives", type=int, default=4)
    p.add_argument("-k", "--topk", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, validation, test = (read(args.data, split) for split in ("train", "validation", "test"))
    users = int(max(frame["user_id"].max() for frame in (train, validation, test))) + 1
    items = int(max(frame["item_id"].max() for frame in (train, validation, test))) + 1
    first = int(min(frame["item_id"].min() for frame in (train, validation, test)))
    model = PlainNeuMF(users, items, args.factors, args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_of = nn.BCEWithLogitsLoss()
    u = torch.from_numpy(train["user_id"].to_numpy(np.int64))
    i = torch.from_numpy(train["item_id"].to_numpy(np.int64))
    positives = np.unique(u.numpy() * items + i.numpy())
    best = None
    for epoch in range(args.epochs):
        begin = time.perf_counter()
        model.train()
        sampled = negatives(rng, positives, u.numpy(), items, first, args.negatives)
        batch_u, batch_i = u.repeat(1 + args.negatives), torch.cat([i, torch.from_numpy(sampled)])
        labels = torch.cat([torch.ones(len(i)), torch.zeros(len(sampled))])
        order = torch.randperm(len(batch_u))
        for start in range(0, len(order), args.batch_size):
            at = order[start:start + args.batch_size]
            optimizer.zero_grad()
            loss_of(model(batch_u[at], batch_i[at]), labels[at]).backward()
            optimizer.step()
        model.eval()
        valid, tested = hit_rate(model, validation, args.topk), hit_rate(model, test, args.topk)
        print(f"epoch {epoch:>3}  valid HR@{args.topk} {valid[0]:.4f}  test HR@{args.topk} {tested[0]:.4f} "
              f"NDCG@{args.topk} {tested[1]:.4f}  {time.perf_counter() - begin:.1f}s", flush=True)
        if best is None or valid[0] > best["best_valid_hr"]:
            best = {"best_epoch": epoch, "best_valid_hr": valid[0], "best_hr": tested[0], "best_ndcg": tested[1]}
    print(json.dumps(best))
    return best


if __name__ == "__main__":
    main()

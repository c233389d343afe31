"""What a user would otherwise write: Liang et al.'s Mult-VAE in plain PyTorch on dense user rows.

Reads the lists a prepared DATA_DIR holds (pandas), builds a dense users x items matrix, and trains with a
shuffled index, dense input rows, nn.Linear layers and the same loss, annealing and optimizer settings as
`python -m training.vae`'s defaults. Nothing from the project's training code is used: it is the yardstick.
Prints one JSON line: test NDCG@100 / Recall@20 / Recall@50 of the epoch with the best validation NDCG@100,
and training users/s.
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


def dense(frame: pd.DataFrame, column: str, n_items: int) -> torch.Tensor:
    rows = np.repeat(np.arange(len(frame)), frame[column].map(len).to_numpy())
    cols = np.concatenate(frame[column].to_numpy()).astype(np.int64)
    x = torch.zeros(len(frame), n_items)
    x[torch.from_numpy(rows), torch.from_numpy(cols)] = 1.0
    return x


class Plain(nn.Module):
    def __init__(self, n_items: int, hidden: int = 600, latent: int = 200, dropout: float = 0.5):
        super().__init__()
        self.q1, self.q2 = nn.Linear(n_items, hidden), nn.Linear(hidden, 2 * latent)
        self.p1, self.p2 = nn.Linear(latent, hidden), nn.Linear(hidden, n_items)
        self.drop = nn.Dropout(dropout)
        for layer in (self.q1, self.q2, self.p1, self.p2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, 0, 0.001)

    def forward(self, x):
        h = self.drop(nn.functional.normalize(x, dim=1))
        mu, logvar = self.q2(torch.tanh(self.q1(h))).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.p2(torch.tanh(self.p1(z))), mu, logvar


def ndcg_recall(model, fold_in, target, allowed, k=100):
    model.eval()
    with torch.no_grad():
        scores = model(fold_in)[0]
    scores[fold_in > 0] = -np.inf
    scores[:, ~allowed] = -np.inf
    top = scores.topk(k, dim=1).indices
    hits = torch.gather(target, 1, top)
    n = target.sum(1)
    discount = 1 / torch.log2(torch.arange(2, k + 2).float())
    idcg = torch.cumsum(discount, 0)[n.clamp(1, k).long() - 1]
    out = {f"ndcg@{k}": ((hits * discount).sum(1) / idcg).mean().item()}
    for r in (20, 50):
        out[f"recall@{r}"] = (hits[:, :r].sum(1) / n.clamp(max=r)).mean().item()
    model.train()
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch_size", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--total_anneal_steps", type=int, default=2000)
    p.add_argument("--anneal_cap", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    data = Path(args.data)
    spec = yaml.safe_load((data / "feature_spec.yaml").read_text())
    n_items = spec["feature_spec"]["item_id"]["cardinality"]
    train = dense(pd.read_parquet(data / "train"), "item_id", n_items)
    held = {name: pd.read_parquet(data / name) for name in ("validation", "test")}
    held = {name: (dense(f, "fold_in", n_items), dense(f, "target", n_items)) for name, f in held.items()}
    allowed = train.sum(0) > 0
    model = Plain(n_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, best, train_seconds, users = 0, None, 0.0, 0
    for epoch in range(args.epochs):
        begin = time.perf_counter()
        for idx in torch.randperm(len(train)).split(args.batch_size):
            x = train[idx]
            logits, mu, logvar = model(x)
            nll = -(torch.log_softmax(logits, 1) * x).sum(1).mean()
            kl = (0.5 * (-logvar + logvar.exp() + mu ** 2 - 1)).sum(1).mean()
            loss = nll + min(args.anneal_cap, step / args.total_anneal_steps) * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            users += len(idx)
        train_seconds += time.perf_counter() - begin
        valid = ndcg_recall(model, *held["validation"], allowed)["ndcg@100"]
        if best is None or valid > best[0]:
            best = (valid, epoch, ndcg_recall(model, *held["test"], allowed))
    return {**best[2], "valid_ndcg@100": best[0], "best_epoch": best[1], "train_throughput": users / train_seconds}


if __name__ == "__main__":
    print(json.dumps(main()))

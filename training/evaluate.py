"""Score every test series with the model (or TopPop) and reduce HR@K / NDCG@K over ranks."""
from __future__ import annotations

import time

import torch

from .data import TestSeries
from .distributed import Dist
from .metrics import hit_and_ndcg_sums, ranks


def reduce_metrics(scores: torch.Tensor, test: TestSeries, k: int, dist: Dist) -> tuple[float, float]:
    hits, ndcg = hit_and_ndcg_sums(ranks(scores, test.items, test.positive_at), k)
    hits, ndcg = dist.sum(hits.item(), ndcg.item())
    return hits / test.total_series, ndcg / test.total_series


@torch.no_grad()
def evaluate(model: torch.nn.Module, test: TestSeries, k: int, batch_size: int, dist: Dist, autocast) -> dict:
    begin = time.perf_counter()
    was_training = model.training
    model.eval()
    users, items = test.users.reshape(-1), test.items.reshape(-1)
    scores = torch.empty(users.shape, dtype=torch.float32, device=users.device)
    with autocast():
        for start in range(0, users.numel(), batch_size):
            end = start + batch_size
            scores[start:end] = model(users[start:end], items[start:end]).float()
    hr, ndcg = reduce_metrics(scores.view(test.items.shape), test, k, dist)
    model.train(was_training)
    seconds = time.perf_counter() - begin
    samples = dist.sum(float(users.numel()))[0]
    return {"hr": hr, "ndcg": ndcg, "eval_seconds": seconds, "eval_throughput": samples / max(seconds, 1e-9)}


def evaluate_toppop(popularity: torch.Tensor, test: TestSeries, k: int, dist: Dist) -> dict:
    """The trivial baseline: rank every candidate by how often it appears in train."""
    hr, ndcg = reduce_metrics(popularity[test.items].float(), test, k, dist)
    return {"toppop_hr": hr, "toppop_ndcg": ndcg}

"""The sampled protocol of DeepLearningExamples' NCF: each series' positive ranked among its sampled
negatives (`metrics.py`: repeats masked, ties against the model), for any (user, item) scorer."""
from __future__ import annotations

import time

import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from .data.test_series import TestSeries
from .metrics import hit_and_ndcg_sums, ranks
from .runtime import Runtime


def check_topk(k: int, spec: FeatureSpec) -> None:
    """HR@K over series of length L is 1.0 for every model when K >= L - 1 negatives + 1."""
    if k >= spec.samples_per_series:
        raise UserError(f"-k {k} must be smaller than the test series length {spec.samples_per_series} "
                        "(every model would score HR 1.0)")


def reduce_metrics(scores: torch.Tensor, series: TestSeries, k: int, runtime: Runtime) -> dict:
    hits, ndcg = hit_and_ndcg_sums(ranks(scores, series.items, series.positive_at), k)
    hits, ndcg = runtime.sum(hits.item(), ndcg.item())
    return {"hr": hits / series.total_series, "ndcg": ndcg / series.total_series}


@torch.no_grad()
def evaluate_series(model: torch.nn.Module, series: TestSeries, k: int, batch_size: int, runtime: Runtime) -> dict:
    """hr and ndcg of `model` over all ranks' series; `batch_size` pairs per forward pass."""
    begin = time.perf_counter()
    users, items = series.users.reshape(-1), series.items.reshape(-1)
    scores = torch.empty(users.shape, dtype=torch.float32, device=users.device)
    with runtime.autocast():
        for start in range(0, users.numel(), batch_size):
            end = start + batch_size
            scores[start:end] = model(users[start:end], items[start:end]).float()
    result = reduce_metrics(scores.view(series.items.shape), series, k, runtime)
    seconds = time.perf_counter() - begin
    samples = runtime.sum(float(users.numel()))[0]
    return {**result, "eval_seconds": seconds, "eval_throughput": samples / max(seconds, 1e-9)}


def evaluate_popularity(counts: torch.Tensor, series: TestSeries, k: int, runtime: Runtime) -> dict:
    """TopPop: every candidate ranked by how often it appears in train."""
    return reduce_metrics(counts[series.items].float(), series, k, runtime)

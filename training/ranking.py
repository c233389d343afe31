"""Full-catalogue ranking, one protocol for every model family and baseline.

Each evaluated user has a list of target items (NeuMF: the held-out positive; Mult-VAE: the held-out
part of the user's items), a list of items that are excluded (what the user already has) and, for
models that read a history, a fold-in list. Every candidate item is scored; excluded items and
non-candidates (reserved indices, and whatever the family does not recommend) drop out. Items are then
ordered by score with ties against the model (a target ranks after every non-target of equal score),
and the top K are compared with the targets:
- HR@K: share of users with at least one target in the top K;
- NDCG@K = DCG@K / IDCG@K, DCG = sum over hits of 1 / log2(position + 2) (positions from 0), IDCG the
  DCG of min(K, |targets|) hits in a row;
- Recall@K = hits in the top K / min(K, |targets|).
With one target per user, the position of the target is the number of eligible items scoring >= it,
the rule of the sampled protocol (`sampled.py`). Sums are all-reduced over ranks, then divided.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from .runtime import Runtime
from .sparse import Lists, row_ids

# (users (B,), fold-in CSR (B x items)) -> scores (B x items): a family's all-items scoring of a user batch
ScoreUsers = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RankingSet:
    """This rank's share of the users one split evaluates."""

    users: torch.Tensor   # (n,) encoded user ids
    fold_in: Lists        # what a history-reading model is given
    exclude: Lists        # what the user has: never a candidate
    targets: Lists        # what should rank high
    n_items: int
    total_users: int      # over all ranks

    def __len__(self) -> int:
        return len(self.users)


def exclude(scores: torch.Tensor, seen: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """-inf, in place, for each row's seen items (a CSR tensor of the same shape) and for non-candidates."""
    scores[row_ids(seen), seen.col_indices()] = -torch.inf
    scores[:, ~candidates] = -torch.inf
    return scores


def pessimistic_order(scores: torch.Tensor, truth: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of each row's k best items, a target placed after every non-target of equal score."""
    targets_last = torch.sort(truth.to(torch.uint8), dim=1, stable=True).indices
    by_score = torch.sort(torch.gather(scores, 1, targets_last), dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(targets_last, 1, by_score)


def metric_sums(scores: torch.Tensor, targets: torch.Tensor, k: int, recall_at=()) -> dict[str, torch.Tensor]:
    """Sums over the batch's users of hr, ndcg, recall at k and recall@r for each r; `targets` is CSR."""
    truth = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    truth[row_ids(targets), targets.col_indices()] = True
    n_target = truth.sum(dim=1)
    depth = min(max((k, *recall_at)), scores.shape[1])
    hits = torch.gather(truth, 1, pessimistic_order(scores, truth, depth)).double()
    discount = 1.0 / torch.log2(torch.arange(2, depth + 2, device=scores.device, dtype=torch.float64))
    kk = min(k, depth)
    ideal = torch.cumsum(discount[:kk], 0)[(n_target.clamp(1, kk) - 1)]
    sums = {"hr": (hits[:, :kk].sum(dim=1) > 0).double().sum(),
            "ndcg": ((hits[:, :kk] * discount[:kk]).sum(dim=1) / ideal).sum(),
            "recall": (hits[:, :kk].sum(dim=1) / n_target.clamp_max(k).clamp_min(1)).sum()}
    for r in recall_at:
        sums[f"recall@{r}"] = (hits[:, :r].sum(dim=1) / n_target.clamp_max(r).clamp_min(1)).sum()
    return sums


@torch.no_grad()
def evaluate_ranking(score_users: ScoreUsers, data: RankingSet, candidates: torch.Tensor, k: int, batch_users: int,
                     runtime: Runtime, recall_at=()) -> dict:
    """Means over all ranks' users of hr, ndcg, recall (at k) and recall@r; eval_seconds, eval_throughput."""
    begin = time.perf_counter()
    keys = ["hr", "ndcg", "recall", *(f"recall@{r}" for r in recall_at)]
    sums = torch.zeros(len(keys), dtype=torch.float64, device=runtime.device)
    for start in range(0, len(data), batch_users):
        end = min(start + batch_users, len(data))
        scores = score_users(data.users[start:end], data.fold_in.rows(start, end, data.n_items)).float().clone()
        scores = exclude(scores, data.exclude.rows(start, end, data.n_items), candidates)
        batch = metric_sums(scores, data.targets.rows(start, end, data.n_items), k, recall_at)
        sums += torch.stack([batch[key] for key in keys])
    *totals, users = runtime.sum(*sums.tolist(), float(len(data)))
    seconds = time.perf_counter() - begin
    return {**{key: total / data.total_users for key, total in zip(keys, totals)},
            "eval_seconds": seconds, "eval_throughput": users / max(seconds, 1e-9)}


def popularity_scores(counts: torch.Tensor) -> ScoreUsers:
    """TopPop under the same protocol: every user gets the train counts as scores."""
    return lambda users, fold_in: counts.float().expand(len(users), -1)

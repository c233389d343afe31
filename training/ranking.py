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
- Recall@K = hits in the top K / min(K, |targets|) (Liang et al. 2018, the VAE-CF protocol), or, for a user's
  own split (`RankingSet.recall_of_all`), hits / |targets| (the full-ranking benchmarks: NGCF, LightGCN, SimpleX).
With one target per user, the position of the target is the number of eligible items scoring >= it,
the rule of the sampled protocol (`sampled.py`). Sums are all-reduced over ranks, then divided.
`evaluate_at` scores once and reports several K, plus coverage@K: the share of candidate items that are
in at least one evaluated user's top K (`python -m training.compare`).
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
    recall_of_all: bool = False  # Recall@K over all of a user's targets, not over min(K, |targets|)

    def __len__(self) -> int:
        return len(self.users)


def exclude(scores: torch.Tensor, seen: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """-inf, in place, for each row's seen items (a CSR tensor of the same shape) and for non-candidates."""
    scores[row_ids(seen), seen.col_indices()] = -torch.inf
    scores[:, ~candidates] = -torch.inf
    return scores


def order_key(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """One int64 per (row, item) that orders as the protocol does: score (in float32) descending, then a
    non-target before a target of equal score (ties against the model), then the lower item index first.
    The float's bits are made monotone as a signed integer and placed above the two tie-breakers, so that
    `topk` on the key is the pessimistic order without sorting whole rows."""
    bits = scores.float().contiguous().view(torch.int32)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # negative floats: order reversed by the flip
    columns = torch.arange(scores.shape[1], device=scores.device, dtype=torch.int64)
    return (bits << 32) | ((~truth).long() << 31) | (2**31 - 1 - columns)


def pessimistic_order(scores: torch.Tensor, truth: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of each row's k best items, a target placed after every non-target of equal score (ties
    between non-targets or between targets: the lower index first). Top-k selection, not a sort of each row."""
    return torch.topk(order_key(scores, truth), k, dim=1, sorted=True).indices


def ranked_hits(scores: torch.Tensor, targets: torch.Tensor, depth: int):
    """Each row's `depth` best columns (pessimistic ties), whether each is a target (float64), and the
    number of targets per row; `targets` is CSR."""
    truth = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    truth[row_ids(targets), targets.col_indices()] = True
    order = pessimistic_order(scores, truth, depth)
    return order, torch.gather(truth, 1, order).double(), truth.sum(dim=1)


def sums_at(hits: torch.Tensor, n_target: torch.Tensor, k: int, recall_of_all: bool = False) -> dict[str, torch.Tensor]:
    """Sums over the rows of hr, ndcg and recall at k, from `ranked_hits` of depth >= min(k, items)."""
    kk = min(k, hits.shape[1])
    discount = 1.0 / torch.log2(torch.arange(2, kk + 2, device=hits.device, dtype=torch.float64))
    ideal = torch.cumsum(discount, 0)[(n_target.clamp(1, kk) - 1)]
    found = hits[:, :kk]
    return {"hr": (found.sum(dim=1) > 0).double().sum(),
            "ndcg": ((found * discount).sum(dim=1) / ideal).sum(),
            "recall": (found.sum(dim=1) / (n_target if recall_of_all else n_target.clamp_max(k)).clamp_min(1)).sum()}


def metric_sums(scores: torch.Tensor, targets: torch.Tensor, k: int, recall_at=(),
                recall_of_all: bool = False) -> dict[str, torch.Tensor]:
    """Sums over the batch's users of hr, ndcg, recall at k and recall@r for each r; `targets` is CSR."""
    depth = min(max((k, *recall_at)), scores.shape[1])
    _, hits, n_target = ranked_hits(scores, targets, depth)
    sums = sums_at(hits, n_target, k, recall_of_all)
    for r in recall_at:
        sums[f"recall@{r}"] = sums_at(hits, n_target, r, recall_of_all)["recall"]
    return sums


def scored_batches(score_users: ScoreUsers, data: RankingSet, candidates: torch.Tensor, batch_users: int):
    """(scores with excluded items and non-candidates at -inf, targets CSR) per batch of `batch_users` users."""
    for start in range(0, len(data), batch_users):
        end = min(start + batch_users, len(data))
        scores = score_users(data.users[start:end], data.fold_in.rows(start, end, data.n_items)).float().clone()
        yield (exclude(scores, data.exclude.rows(start, end, data.n_items), candidates),
               data.targets.rows(start, end, data.n_items))


@torch.no_grad()
def evaluate_ranking(score_users: ScoreUsers, data: RankingSet, candidates: torch.Tensor, k: int, batch_users: int,
                     runtime: Runtime, recall_at=()) -> dict:
    """Means over all ranks' users of hr, ndcg, recall (at k) and recall@r; eval_seconds, eval_throughput."""
    begin = time.perf_counter()
    keys = ["hr", "ndcg", "recall", *(f"recall@{r}" for r in recall_at)]
    sums = torch.zeros(len(keys), dtype=torch.float64, device=runtime.device)
    for scores, targets in scored_batches(score_users, data, candidates, batch_users):
        batch = metric_sums(scores, targets, k, recall_at, data.recall_of_all)
        sums += torch.stack([batch[key] for key in keys])
    *totals, users = runtime.sum(*sums.tolist(), float(len(data)))
    seconds = time.perf_counter() - begin
    return {**{key: total / data.total_users for key, total in zip(keys, totals)},
            "eval_seconds": seconds, "eval_throughput": users / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate_at(score_users: ScoreUsers, data: RankingSet, candidates: torch.Tensor, ks, batch_users: int,
                runtime: Runtime) -> dict:
    """hr@k, ndcg@k, recall@k and coverage@k for every k in `ks` from one scoring pass (means over all ranks'
    users; coverage over the candidates); eval_seconds, eval_throughput."""
    begin = time.perf_counter()
    ks = sorted(set(ks))
    depth = min(ks[-1], data.n_items)
    sums = {(m, k): torch.zeros((), dtype=torch.float64, device=runtime.device)
            for k in ks for m in ("hr", "ndcg", "recall")}
    shown = torch.zeros(len(ks), data.n_items, dtype=torch.bool, device=runtime.device)
    for scores, targets in scored_batches(score_users, data, candidates, batch_users):
        order, hits, n_target = ranked_hits(scores, targets, depth)
        recommendable = torch.isfinite(torch.gather(scores, 1, order))  # fewer eligible items than K: no filler
        for j, k in enumerate(ks):
            for m, value in sums_at(hits, n_target, k, data.recall_of_all).items():
                sums[m, k] += value
            shown[j, order[:, :k][recommendable[:, :k]]] = True
    *totals, users = runtime.sum(*(v.item() for v in sums.values()), float(len(data)))
    per_item = shown.double()
    if runtime.world > 1:  # an item is covered if any rank's users were shown it
        per_item = torch.tensor(runtime.sum(*per_item.flatten().tolist())).view_as(per_item)
    shown_counts = (per_item > 0).sum(dim=1).tolist()
    n_candidates = max(int(candidates.sum()), 1)
    seconds = time.perf_counter() - begin
    return {**{f"{m}@{k}": total / max(data.total_users, 1) for (m, k), total in zip(sums, totals)},
            **{f"coverage@{k}": count / n_candidates for k, count in zip(ks, shown_counts)},
            "users": int(users), "eval_seconds": seconds, "eval_throughput": users / max(seconds, 1e-9)}


def popularity_scores(counts: torch.Tensor) -> ScoreUsers:
    """TopPop under the same protocol: every user gets the train counts as scores."""
    return lambda users, fold_in: counts.float().expand(len(users), -1)

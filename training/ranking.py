"""Top-K metrics over the whole catalogue for held-out users (VAE-CF's protocol, as DLE and Liang et al.).

Every candidate item is scored; the user's fold-in items and the non-candidates (reserved indices, items
no training user has) are excluded; the K best are compared with the target items:
- NDCG@K = DCG@K / IDCG@K with DCG = sum over hits of 1/log2(rank + 2) (rank from 0) and IDCG the DCG
  of min(K, |targets|) hits in a row;
- Recall@K = hits in the top K / min(K, |targets|).
Functions return per-batch sums (float64) so ranks can all-reduce them before dividing by the users.
"""
from __future__ import annotations

import torch


def exclude(scores: torch.Tensor, seen: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """-inf, in place, for each row's seen items (a CSR tensor of the same shape) and for non-candidates."""
    crow = seen.crow_indices()
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())
    scores[rows, seen.col_indices()] = -torch.inf
    scores[:, ~candidates] = -torch.inf
    return scores


def dense_rows(x: torch.Tensor) -> torch.Tensor:
    """A boolean (rows x items) matrix of a CSR tensor's stored entries."""
    crow = x.crow_indices()
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())
    dense = torch.zeros(x.shape, dtype=torch.bool, device=crow.device)
    dense[rows, x.col_indices()] = True
    return dense


def topk_sums(scores: torch.Tensor, targets: torch.Tensor, ndcg_k: int, recall_ks=(20, 50)) -> dict:
    """Sums over the batch's users of NDCG@ndcg_k and Recall@r for each r; `targets` is a CSR tensor."""
    truth = dense_rows(targets)
    n_target = truth.sum(dim=1)
    k = min(max(ndcg_k, *recall_ks), scores.shape[1])
    top = torch.topk(scores, k, dim=1).indices
    hits = torch.gather(truth, 1, top).double()
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, device=scores.device, dtype=torch.float64))
    ideal = torch.cumsum(discount, 0)
    kn = min(ndcg_k, k)
    dcg = (hits[:, :kn] * discount[:kn]).sum(dim=1)
    idcg = ideal[(n_target.clamp(1, kn) - 1)]
    sums = {f"ndcg@{ndcg_k}": (dcg / idcg).sum()}
    for r in recall_ks:
        sums[f"recall@{r}"] = (hits[:, :r].sum(dim=1) / n_target.clamp_max(r).clamp_min(1)).sum()
    return sums

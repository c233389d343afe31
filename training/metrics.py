"""HR@K and NDCG@K over test series of one positive and its negatives."""
from __future__ import annotations

import torch


def duplicate_mask(items: torch.Tensor, positive_at: torch.Tensor) -> torch.Tensor:
    """True for negatives that repeat the series' positive item or an earlier negative."""
    rows = torch.arange(items.shape[0], device=items.device)
    positive_items = items[rows, positive_at]
    mask = items == positive_items[:, None]
    order = torch.sort(items, dim=1, stable=True).indices
    ordered = torch.gather(items, 1, order)
    repeat = torch.zeros_like(mask)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    mask |= torch.zeros_like(mask).scatter_(1, order, repeat)
    mask[rows, positive_at] = False
    return mask


def ranks(scores: torch.Tensor, items: torch.Tensor, positive_at: torch.Tensor) -> torch.Tensor:
    """Number of unmasked negatives scoring >= the positive (ties count against the model)."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    positive = scores[rows, positive_at]
    beats = (scores >= positive[:, None]) & ~duplicate_mask(items, positive_at)
    beats[rows, positive_at] = False
    return beats.sum(dim=1)


def hit_and_ndcg_sums(rank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums (not means) so ranks can all-reduce them before dividing."""
    hit = rank < k
    ndcg = torch.where(hit, 1.0 / torch.log2(rank.double() + 2.0), torch.zeros((), dtype=torch.float64,
                                                                             device=rank.device))
    return hit.double().sum(), ndcg.sum()

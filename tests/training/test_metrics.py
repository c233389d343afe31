"""HR@K / NDCG@K against hand-computed series: ties, masking of repeats, the choice of K."""
import math

import torch

from training.metrics import duplicate_mask, hit_and_ndcg_sums, ranks


def test_rank_counts_ties_against_the_model_and_masks_repeats():
    #                 positive  neg   neg(=pos item)  neg   neg(repeat of col 1)
    items = torch.tensor([[10, 11, 10, 12, 11]])
    scores = torch.tensor([[0.5, 0.9, 0.99, 0.5, 0.8]])
    positive_at = torch.tensor([0])
    # col 2 repeats the positive item -> masked; col 4 repeats col 1 -> masked;
    # col 1 (0.9) beats the positive, col 3 ties (0.5) and counts against it -> rank 2.
    assert duplicate_mask(items, positive_at).tolist() == [[False, False, True, False, True]]
    assert ranks(scores, items, positive_at).tolist() == [2]


def test_positive_may_sit_anywhere_in_the_series():
    items = torch.tensor([[7, 8, 9], [4, 5, 6]])
    scores = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.9, 0.3]])
    assert ranks(scores, items, torch.tensor([2, 1])).tolist() == [0, 0]


def test_hr_and_ndcg_by_hand():
    rank = torch.tensor([0, 1, 2, 5])
    hits, ndcg = hit_and_ndcg_sums(rank, k=2)
    assert hits.item() == 2  # ranks 0 and 1 are inside the top 2
    assert math.isclose(ndcg.item(), 1 / math.log2(2) + 1 / math.log2(3))
    hits, ndcg = hit_and_ndcg_sums(rank, k=10)
    assert hits.item() == 4
    expected = sum(1 / math.log2(r + 2) for r in (0, 1, 2, 5))
    assert math.isclose(ndcg.item(), expected)

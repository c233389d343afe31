"""HR@K / NDCG@K against hand-computed series: ties, masking of repeats, the choice of K."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- against a brute-force reading of the rules (hypothesis) ---------------------------------

def brute_rank(scores, items, positive_at) -> int:
    seen, rank = {items[positive_at]}, 0
    for j, (score, item) in enumerate(zip(scores, items)):
        if j == positive_at:
            continue
        if item in seen:  # repeats the positive or an earlier negative: masked
            continue
        seen.add(item)
        rank += score >= scores[positive_at]
    return rank


series = st.integers(2, 9).flatmap(lambda length: st.lists(
    st.tuples(st.lists(st.integers(0, 4), min_size=length, max_size=length),   # scores with many ties
              st.lists(st.integers(0, 6), min_size=length, max_size=length),   # items with repeats
              st.integers(0, length - 1)), min_size=1, max_size=6))


@settings(max_examples=200, deadline=None)
@given(rows=series, k=st.integers(1, 10))
def test_ranks_hr_and_ndcg_match_brute_force(rows, k):
    scores = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    items = torch.tensor([r[1] for r in rows])
    positive_at = torch.tensor([r[2] for r in rows])
    expected = [brute_rank(*r) for r in rows]
    got = ranks(scores, items, positive_at)
    assert got.tolist() == expected
    hits, ndcg = hit_and_ndcg_sums(got, k)
    assert hits.item() == sum(r < k for r in expected)
    assert math.isclose(ndcg.item(), sum(1 / math.log2(r + 2) for r in expected if r < k), rel_tol=1e-12)

"""NDCG@K and Recall@K over the whole catalogue against a plain Python reference, and the exclusions."""
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data.lists import multi_hot
from training.ranking import exclude, topk_sums


def csr(lists, n_items):
    offsets = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    items = torch.tensor([i for x in lists for i in x], dtype=torch.int64)
    return multi_hot(offsets, items, n_items)


def reference(scores, targets, k):
    """DLE's definitions, one user at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    top = order[:k]
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top) if i in targets)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(targets))))
    return dcg / idcg, sum(i in targets for i in top) / min(k, len(targets))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 12), st.integers(5, 60), st.sampled_from([1, 3, 10, 100]))
def test_sums_match_the_reference(seed, users, n_items, k):
    rng = np.random.default_rng(seed)
    scores = rng.permutation(users * n_items).reshape(users, n_items).astype(np.float64)  # no ties
    targets = [sorted(rng.choice(n_items, rng.integers(1, n_items + 1), replace=False).tolist()) for _ in range(users)]
    sums = topk_sums(torch.from_numpy(scores), csr(targets, n_items), k, recall_ks=(2, 5))
    expected = [reference(scores[u].tolist(), set(targets[u]), k) for u in range(users)]
    assert math.isclose(sums[f"ndcg@{k}"].item(), sum(e[0] for e in expected), rel_tol=1e-9, abs_tol=1e-12)
    for r in (2, 5):
        want = sum(reference(scores[u].tolist(), set(targets[u]), r)[1] for u in range(users))
        assert math.isclose(sums[f"recall@{r}"].item(), want, rel_tol=1e-9, abs_tol=1e-12)


def test_fold_in_items_and_non_candidates_are_excluded():
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])
    fold_in = csr([[0, 1]], 6)
    allowed = torch.tensor([False, True, True, False, True, True])  # 0: reserved index, 3: no training user has it
    ranked = exclude(scores.clone(), fold_in, allowed)
    assert torch.topk(ranked, 3).indices.tolist() == [[2, 4, 5]]
    perfect = topk_sums(ranked, csr([[2, 4]], 6), 2, recall_ks=(2,))
    assert perfect["ndcg@2"].item() == 1.0 and perfect["recall@2"].item() == 1.0

"""Full-catalogue ranking, one protocol for every family: HR/NDCG/Recall against a plain Python reference
(ties against the model), several K and coverage from one pass, the exclusions, and brute-force rankings of
NeuMF and Mult-VAE users."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.ranking import RankingSet, evaluate_at, evaluate_ranking, exclude, metric_sums, popularity_scores
from training.runtime import Runtime
from training.sparse import Lists, multi_hot
from training.tasks import build_model
from training.tasks.multvae import MultVAETask
from training.tasks.neumf import NeuMFTask

N_ITEMS = 9  # reserved 0..2, real items 3..8


def csr(lists, n_items):
    offsets = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    items = torch.tensor([i for x in lists for i in x], dtype=torch.int64)
    return multi_hot(offsets, items, n_items)


def lists(rows):
    return Lists(torch.tensor([0] + [len(r) for r in rows]).cumsum(0), torch.tensor([i for r in rows for i in r],
                                                                                     dtype=torch.int64))


def reference(scores, targets, k, of_all=False):
    """The definitions, one user at a time: items by score, a target after every non-target of equal score.
    Recall over min(k, |targets|) (Liang et al.), or over |targets| (`of_all`: NGCF, LightGCN, SimpleX)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i in targets))
    top = order[:k]
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top) if i in targets)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(targets))))
    hits = sum(i in targets for i in top)
    return {"hr": float(hits > 0), "ndcg": dcg / idcg, "recall": hits / (len(targets) if of_all else min(k, len(targets)))}


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 12), st.integers(5, 60), st.sampled_from([1, 3, 10, 100]),
       st.booleans(), st.booleans())
def test_sums_match_the_reference(seed, users, n_items, k, ties, of_all):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 4, (users, n_items)) if ties else rng.permutation(users * n_items).reshape(users, n_items))
    scores = scores.astype(np.float64)
    targets = [sorted(rng.choice(n_items, rng.integers(1, n_items + 1), replace=False).tolist()) for _ in range(users)]
    sums = metric_sums(torch.from_numpy(scores), csr(targets, n_items), k, recall_at=(2, 5), recall_of_all=of_all)
    expected = [reference(scores[u].tolist(), set(targets[u]), k, of_all) for u in range(users)]
    for key in ("hr", "ndcg", "recall"):
        assert math.isclose(sums[key].item(), sum(e[key] for e in expected), rel_tol=1e-9, abs_tol=1e-12), key
    for r in (2, 5):
        want = sum(reference(scores[u].tolist(), set(targets[u]), r, of_all)["recall"] for u in range(users))
        assert math.isclose(sums[f"recall@{r}"].item(), want, rel_tol=1e-9, abs_tol=1e-12)



@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 9), st.integers(5, 40), st.integers(1, 4))
def test_several_k_and_coverage_from_one_pass_match_the_reference(seed, users, n_items, batch):
    """evaluate_at: every K as metric_sums' reference, and coverage@K = share of candidates in someone's top K
    (excluded items and non-candidates never count, even when a user has fewer than K eligible items)."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (users, n_items)).astype(np.float64)  # many ties
    candidates = torch.from_numpy(rng.random(n_items) < 0.8)
    targets = [sorted(rng.choice(n_items, rng.integers(1, 3), replace=False).tolist()) for _ in range(users)]
    have = [sorted(set(rng.choice(n_items, rng.integers(0, 4)).tolist()) - set(t)) for t in targets]
    data = RankingSet(torch.arange(users), lists(have), lists(have), lists(targets), n_items, users)
    ks = (1, 3, 7, 50)
    got = evaluate_at(lambda u, f: torch.from_numpy(scores[u.numpy()]), data, candidates, ks, batch, Runtime())
    eligible = [[i for i in range(n_items) if candidates[i] and i not in have[u]] for u in range(users)]
    for k in ks:
        masked = [[scores[u, i] if i in eligible[u] else -math.inf for i in range(n_items)] for u in range(users)]
        expected = [reference(masked[u], set(targets[u]), k) for u in range(users)]
        for key in ("hr", "ndcg", "recall"):
            assert got[f"{key}@{k}"] == pytest.approx(sum(e[key] for e in expected) / users, abs=1e-12), (key, k)
        shown = {i for u in range(users)
                 for i in sorted(eligible[u], key=lambda i: (-scores[u, i], i in targets[u], i))[:k]}
        assert got[f"coverage@{k}"] == pytest.approx(len(shown) / max(int(candidates.sum()), 1)), k
    assert got["users"] == users

def test_seen_items_and_non_candidates_are_excluded():
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])
    allowed = torch.tensor([False, True, True, False, True, True])  # 0: reserved index, 3: not a candidate
    ranked = exclude(scores.clone(), csr([[0, 1]], 6), allowed)
    assert torch.topk(ranked, 3).indices.tolist() == [[2, 4, 5]]
    perfect = metric_sums(ranked, csr([[2, 4]], 6), 2)
    assert perfect["ndcg"].item() == 1.0 and perfect["recall"].item() == 1.0 and perfect["hr"].item() == 1.0


def test_toppop_by_hand_with_ties_reserved_and_known_items():
    popularity = torch.tensor([0, 0, 0, 5, 3, 3, 1, 0, 2])
    # user 3: positive 4 (count 3); item 3 is known (excluded); item 5 ties at 3 and counts against: position 1.
    # user 4: positive 7 (count 0); the five other real items all score >= 0: position 5. Reserved 0..2
    # also score 0 but are never candidates.
    have = lists([[3], []])
    data = RankingSet(torch.tensor([3, 4]), have, have, lists([[4], [7]]), N_ITEMS, 2)
    candidates = NeuMFTask.candidates(popularity, 3)
    at2 = evaluate_ranking(popularity_scores(popularity), data, candidates, 2, 1, Runtime())
    assert at2["hr"] == 0.5 and at2["ndcg"] == pytest.approx(1 / math.log2(3) / 2)
    at6 = evaluate_ranking(popularity_scores(popularity), data, candidates, 6, 2, Runtime())
    assert at6["hr"] == 1.0 and at6["recall"] == 1.0
    assert at6["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(7)) / 2)


def _brute_force(score_row, users, targets, have, candidates, k):
    """HR and NDCG@k of one target per user: its position = eligible rivals scoring >= it."""
    hits = ndcg = 0.0
    for user, target in zip(users, targets):
        scores = score_row(user)
        rivals = [i for i in candidates if i != target and i not in have[user]]
        position = sum(scores[i] >= scores[target] for i in rivals)
        hits += position < k
        ndcg += 1 / math.log2(position + 2) if position < k else 0.0
    return hits / len(users), ndcg / len(users)


def test_neumf_full_ranking_matches_brute_force():
    torch.manual_seed(0)
    model = build_model({"variant": "neumf", "factors": 4, "layers": [8, 4]}, {"users": 6, "items": N_ITEMS}).eval()
    users, targets, have = [3, 4, 5], [8, 3, 6], {3: [4, 5], 4: [], 5: [3]}
    rows = lists([have[u] for u in users])
    data = RankingSet(torch.tensor(users), rows, rows, lists([[t] for t in targets]), N_ITEMS, 3)
    got = evaluate_ranking(lambda u, f: NeuMFTask.score_users(model, u, f), data,
                           NeuMFTask.candidates(torch.ones(N_ITEMS), 3), 3, 1, Runtime())
    with torch.no_grad():
        hr, ndcg = _brute_force(lambda u: model(torch.full((N_ITEMS,), u), torch.arange(N_ITEMS)).numpy(),
                                users, targets, have, range(3, N_ITEMS), 3)
    assert got["hr"] == pytest.approx(hr) and got["recall"] == got["hr"] and got["ndcg"] == pytest.approx(ndcg)


def test_multvae_full_ranking_folds_in_the_history_and_matches_brute_force():
    torch.manual_seed(0)
    model = build_model({"variant": "multvae", "dims": [8, 4], "activation": "tanh"}, {"users": 6, "items": N_ITEMS})
    model.eval()
    users, targets, have = [0, 1, 2], [8, 3, 6], {0: [4, 5], 1: [7], 2: [3, 4, 5]}
    counts = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1, 1])  # item 6 has no training user: never a candidate
    rows = lists([have[u] for u in users])
    data = RankingSet(torch.tensor(users), rows, rows, lists([[t] for t in targets]), N_ITEMS, 3)
    candidates = MultVAETask.candidates(counts, 3)
    got = evaluate_ranking(lambda u, f: MultVAETask.score_users(model, u, f), data, candidates, 2, 2, Runtime())
    with torch.no_grad():
        def score_row(user):
            scores = model(csr([have[user]], N_ITEMS))[0][0].numpy().copy()
            scores[~candidates.numpy()] = -np.inf
            return scores
        hr, ndcg = _brute_force(score_row, users, targets, have, [i for i in range(N_ITEMS) if candidates[i]], 2)
    assert got["hr"] == pytest.approx(hr) and got["ndcg"] == pytest.approx(ndcg)
    assert got["hr"] < 1  # user 2's target (6) is no candidate: never a hit

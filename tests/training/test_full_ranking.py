"""Full-ranking evaluation: hand-computed cases (ties, reserved and known items) and a brute-force check."""
import math

import numpy as np
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training.full_ranking import RankingTask, evaluate_full, evaluate_toppop_full, load_ranking_task
from training.models import build_model
from training.runtime import Runtime

from ..helpers import train

N_ITEMS = 9  # reserved 0..2, real items 3..8


def _task(users, positives, known_pairs=()):
    known = np.array(sorted(u * N_ITEMS + i for u, i in known_pairs), dtype=np.int64)
    return RankingTask(torch.tensor(users), torch.tensor(positives), known, N_ITEMS, 3, len(users))


def test_toppop_full_ranking_by_hand_with_ties_reserved_and_known_items():
    popularity = torch.tensor([0, 0, 0, 5, 3, 3, 1, 0, 2])
    # user 3: positive 4 (count 3); item 3 is known (masked); item 5 ties at 3 and counts against: rank 1.
    # user 4: positive 7 (count 0); the five other real items all score >= 0: rank 5. Reserved 0..2
    # also score 0 but are never candidates.
    task = _task([3, 4], [4, 7], known_pairs=[(3, 3)])
    at2 = evaluate_toppop_full(popularity, task, 2, Runtime())
    assert at2["toppop_full_hr"] == 0.5 and at2["toppop_full_ndcg"] == pytest.approx(1 / math.log2(3) / 2)
    at6 = evaluate_toppop_full(popularity, task, 6, Runtime())
    assert at6["toppop_full_hr"] == 1.0
    assert at6["toppop_full_ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(7)) / 2)


def test_model_full_ranking_matches_brute_force():
    torch.manual_seed(0)
    model = build_model({"variant": "neumf", "factors": 4, "layers": [8, 4]}, {"users": 6, "items": N_ITEMS})
    users, positives = [3, 4, 5], [8, 3, 6]
    known = [(3, 4), (3, 5), (5, 3)]
    got = evaluate_full(model, _task(users, positives, known), 3, 5, Runtime())  # 5 pairs per pass: 1 user each
    hits = ndcg = 0.0
    with torch.no_grad():
        for user, positive in zip(users, positives):
            scores = model(torch.full((N_ITEMS,), user), torch.arange(N_ITEMS)).numpy()
            rivals = [i for i in range(3, N_ITEMS) if i != positive and (user, i) not in known]
            rank = sum(scores[i] >= scores[positive] for i in rivals)
            hits += rank < 3
            ndcg += 1 / math.log2(rank + 2) if rank < 3 else 0.0
    assert got["full_hr"] == pytest.approx(hits / 3) and got["full_recall"] == got["full_hr"]
    assert got["full_ndcg"] == pytest.approx(ndcg / 3)


def test_known_items_come_from_train_validation_and_known_mappings(prepared):
    spec = FeatureSpec.from_yaml(prepared)
    task = load_ranking_task(spec, Runtime())
    n = spec.item_cardinality
    train = spec.read("train")
    validation = spec.read("validation").query("label == 1")
    expected = np.unique(np.concatenate([train["user_id"] * n + train["item_id"],
                                         validation["user_id"] * n + validation["item_id"]]))
    assert np.array_equal(task.known, expected)
    positives = task.users.numpy() * n + task.positives.numpy()
    assert not np.isin(positives, task.known).any() and task.total_users == len(task.users)


def test_training_and_mode_test_report_full_ranking(prepared, tmp_path):
    small = ["-e", "2", "-b", "4096", "-f", "8", "--layers", "16", "8"]
    summary = train("--data", prepared, *small, "--eval", "both", "--checkpoint_dir", tmp_path)
    for key in ("full_hr", "full_ndcg", "full_recall", "toppop_full_hr", "toppop_full_ndcg", "hr", "toppop_hr"):
        assert summary.get(key, summary.get(f"best_{key}")) is not None, key
    # the whole catalogue is a harder competition than 50 sampled negatives
    assert summary["full_hr"] < summary["best_hr"] and summary["toppop_full_hr"] < summary["toppop_hr"]
    tested = train("--mode", "test", "--data", prepared, "--eval", "full", "--load_checkpoint_path",
                   tmp_path / "model.pth")
    assert tested["full_hr"] == pytest.approx(summary["full_hr"]) and "hr" not in tested

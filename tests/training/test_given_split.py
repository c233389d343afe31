"""A user's own split (several test positives per user, no sampled negatives) in the one loop: validation carved
as a seeded share of each user's train items, every figure a full-catalogue ranking, epochs chosen on validation
Recall@K, and the test figures those of an independent evaluator on the chosen model."""
import json

import numpy as np
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training import checkpoint
from training.data.carve import GIVEN_VALIDATION_SHARE, carve_pairs
from training.tasks import build_model

from ..helpers import train, train_fails, write_given_split


@pytest.fixture(scope="module")
def given(tmp_path_factory):
    return write_given_split(tmp_path_factory.mktemp("given") / "data")


def _pairs(frame):
    return set(zip(frame["user_id"].tolist(), frame["item_id"].tolist()))


def test_validation_is_a_seeded_share_of_each_users_train_items(given):
    spec = FeatureSpec.from_yaml(given / "feature_spec.yaml")
    carved = carve_pairs(spec, seed=3)
    try:
        valid, rest, train_rows = carved.spec.read("validation"), carved.spec.read("train"), spec.read("train")
        assert carved.spec.given_split and "seeded 10%" in carved.what
        assert _pairs(valid) | _pairs(rest) == _pairs(train_rows) and not _pairs(valid) & _pairs(rest)
        per_user = valid.groupby("user_id").size()
        want = round(GIVEN_VALIDATION_SHARE * 8)  # 8 train items each
        assert (per_user == want).all() and len(per_user) == train_rows["user_id"].nunique()
        assert not _pairs(valid) & _pairs(spec.read("test"))
        again, other = carve_pairs(spec, seed=3), carve_pairs(spec, seed=4)
        assert _pairs(again.spec.read("validation")) == _pairs(valid)
        assert _pairs(other.spec.read("validation")) != _pairs(valid)
        again.close(), other.close()
    finally:
        carved.close()


def test_a_user_with_one_train_item_keeps_it(tmp_path):
    folder = write_given_split(tmp_path / "d", users=8, items=40, train_per_user=1)
    spec = FeatureSpec.from_yaml(folder / "feature_spec.yaml")
    with pytest.raises(Exception, match="no user has two train positives"):
        carve_pairs(spec, seed=0)


def _independent_figures(model, spec, train_pairs, k):
    """Recall@K over all of a user's test items, NDCG@K and HR@K by numpy from the model's scores."""
    test = spec.read("test")
    scores = model.score_grid(torch.arange(spec.user_cardinality), torch.arange(spec.item_cardinality)).detach().numpy()
    recall, ndcg, hr = [], [], []
    for user, items in test.groupby("user_id")["item_id"]:
        row = scores[user].astype(np.float64).copy()
        row[[i for u, i in train_pairs if u == user]] = -np.inf
        targets = set(items.tolist())
        # ties against the model: among equal scores, a target comes after every non-target
        order = sorted(range(len(row)), key=lambda i: (-row[i], i in targets))[:k]
        hits = [i in targets for i in order]
        dcg = sum(1 / np.log2(r + 2) for r, h in enumerate(hits) if h)
        recall.append(sum(hits) / len(targets))
        ndcg.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(k, len(targets)))))
        hr.append(float(any(hits)))
    return {"recall": np.mean(recall), "ndcg": np.mean(ndcg), "hr": np.mean(hr)}


def test_a_run_is_chosen_on_validation_recall_and_its_test_figures_are_an_independent_evaluators(given, tmp_path):
    run = tmp_path / "run"
    summary = train("--data", str(given), "--model", "mf", "-e", "3", "-k", "5", "--checkpoint_dir", str(run),
                    "--log_path", str(run / "log.jsonl"))
    assert summary["selected_on"] == "validation" and summary["settings"]["eval"] == "full"
    for key in ("best_recall", "best_ndcg", "best_hr", "best_recall@20", "best_valid_recall", "toppop_recall",
                "toppop_valid_recall"):
        assert 0 <= summary[key] <= 1, key
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["valid_recall"])  # the first of equals wins, as the loop keeps it
    assert summary["best_epoch"] == best["epoch"] and summary["best_valid_recall"] == best["valid_recall"]
    spec = FeatureSpec.from_yaml(given / "feature_spec.yaml")
    payload = checkpoint.read(run / checkpoint.BEST)
    model = build_model(payload["meta"]["architecture"], spec.table_sizes, 0.0)
    model.load_state_dict(payload["model"])
    model.eval()
    # at test, everything the user had in the given train file is excluded, the carved validation items included
    expected = _independent_figures(model, spec, _pairs(spec.read("train")), 5)
    for key, value in expected.items():
        assert summary[f"best_{key}"] == pytest.approx(value, abs=1e-6), key
    tested = train("--data", str(given), "--mode", "test", "--load_checkpoint_path", str(run / checkpoint.BEST),
                   "-k", "5")
    assert tested["best_recall"] == pytest.approx(summary["best_recall"], abs=1e-9)


def test_sampled_protocol_is_refused_on_a_given_split(given):
    line = train_fails("--data", str(given), "--model", "mf", "-e", "1", "--eval", "sampled", "--no_eval")
    assert "given split" in line and "--eval full" in line

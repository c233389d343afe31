"""serving/models.py in-process (no server): the same lists as training.recommend, padded to K;
requests handed over together are answered together and split back; raw pairs scored through the
vocabularies."""
import numpy as np
import pandas as pd
import pytest
import torch

from serving.models import RecommendModel, ScoreModel
from training.recommend import Recommender
from training.recommend import main as recommend_main

from ..helpers import vocabulary


@pytest.fixture(scope="module")
def rec(prepared, trained) -> Recommender:
    return Recommender(trained, [prepared])


def cli_lists(tmp_path, trained, prepared, users, k) -> pd.DataFrame:
    out = tmp_path / "cli.parquet"
    assert recommend_main(["--checkpoint", str(trained), "--data", str(prepared), "--users", ",".join(users),
                           "--topk", str(k), "--output", str(out)]) == 0
    return pd.read_parquet(out)


def test_lists_are_training_recommends_padded_to_k(tmp_path, rec, trained, prepared):
    """K = the whole catalogue: every known user has seen something, so every list is short and padded."""
    k = len(rec.item_vocab)
    known = [str(u) for u in vocabulary(prepared.parent / "workflow", "user_id").iloc[[0, 5, 50]]]
    answer = RecommendModel(rec, k).answer([u.encode() for u in [*known, "424242", "not-an-id"]])
    cli = cli_lists(tmp_path, trained, prepared, [*known, "424242"], k)
    assert answer["item_ids"].shape == (5, k) and answer["scores"].shape == (5, k) and answer["scores"].dtype == np.float32
    assert answer["source"].ravel().tolist() == [b"model"] * 3 + [b"popularity"] * 2
    for row, user in enumerate([*known, "424242"]):
        expected = cli[cli["user"] == user]
        n = len(expected)
        assert answer["item_ids"][row, :n].astype(str).tolist() == expected["item"].astype(str).tolist(), user
        column = "score" if row < 3 else "train_count"
        np.testing.assert_allclose(answer["scores"][row, :n], expected[column].to_numpy(np.float32), rtol=1e-6)
        assert (answer["item_ids"][row, n:] == b"").all() and np.isneginf(answer["scores"][row, n:]).all()
    assert n == k and (answer["item_ids"][4] == answer["item_ids"][3]).all()  # popularity lists are full


def test_requests_handed_over_together_are_split_back(rec, prepared):
    users = [str(u).encode() for u in vocabulary(prepared.parent / "workflow", "user_id").iloc[:5]]
    model = RecommendModel(rec, 4)
    alone = [model([{"user_id": np.array(part, dtype=object)[:, None]}])[0] for part in (users[:2], users[2:])]
    assert model.counts() == {"requests": 2, "executions": 2, "rows": 5}
    together = model([{"user_id": np.array(users[:2], dtype=object)[:, None]},
                      {"user_id": np.array(users[2:], dtype=object)[:, None]}])
    assert model.counts() == {"requests": 4, "executions": 3, "rows": 10}
    for one, other in zip(alone, together):
        assert one.keys() == other.keys() == {"item_ids", "scores", "source"}
        assert (one["item_ids"] == other["item_ids"]).all() and np.allclose(one["scores"], other["scores"])
    assert [len(t["source"]) for t in together] == [2, 3]


def test_score_maps_raw_ids_like_categorify_and_unseen_to_oov(rec, prepared, trained):
    workflow = prepared.parent / "workflow"
    users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
    raw = [(users.iloc[0], items.iloc[3]), (users.iloc[7], items.iloc[0]), ("424242", items.iloc[1]),
           (users.iloc[1], "not-an-item")]
    expected_users = [users.index[0], users.index[7], 2, users.index[1]]
    expected_items = [items.index[3], items.index[0], items.index[1], 2]
    got = ScoreModel(rec).answer([str(u).encode() for u, _ in raw], [str(i).encode() for _, i in raw])["score"]
    with torch.no_grad():
        want = rec.model(torch.tensor(expected_users), torch.tensor(expected_items)).numpy()
    assert got.shape == (4, 1) and got.dtype == np.float32
    np.testing.assert_array_equal(got.ravel(), want)

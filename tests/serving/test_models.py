"""serving/models.py in-process (no server), NeuMF and Mult-VAE: the same lists as training.recommend,
padded to K (popularity for users the model cannot score); requests handed over together are answered
together and split back; raw pairs scored through the vocabularies."""
import numpy as np
import pandas as pd
import pytest
import torch

from serving.models import RecommendModel, ScoreModel
from training.recommend import Recommender
from training.recommend import main as recommend_main

from ..helpers import vocabulary
from .lists_data import everything, fold_in_logits, positives, users_by_history


@pytest.fixture(scope="module")
def rec(prepared, trained) -> Recommender:
    return Recommender(trained, [prepared])


@pytest.fixture(scope="module")
def rec_vae(prepared_lists, trained_vae) -> Recommender:
    return Recommender(trained_vae, [prepared_lists])


def cli_lists(tmp_path, trained, prepared, users, k) -> pd.DataFrame:
    out = tmp_path / "cli.parquet"
    assert recommend_main(["--checkpoint", str(trained), "--data", str(prepared), "--users", ",".join(users),
                           "--topk", str(k), "--output", str(out)]) == 0
    return pd.read_parquet(out)


def assert_lists_are_the_clis(answer: dict, cli: pd.DataFrame, users: list[str], sources: list[bytes]) -> None:
    """Row by row: the CLI's items in its order, its scores (model) or train positives (popularity), then padding."""
    assert answer["source"].ravel().tolist() == sources
    k = answer["item_ids"].shape[1]
    for row, (user, source) in enumerate(zip(users, sources)):
        expected = cli[cli["user"] == user]
        n = len(expected)
        assert (expected["source"] == source.decode()).all(), user
        assert answer["item_ids"][row, :n].astype(str).tolist() == expected["item"].astype(str).tolist(), user
        column = "score" if source == b"model" else "popularity"
        np.testing.assert_allclose(answer["scores"][row, :n], expected[column].to_numpy(np.float32), rtol=1e-6,
                                   err_msg=user)
        assert (answer["item_ids"][row, n:] == b"").all() and np.isneginf(answer["scores"][row, n:]).all()
        assert n == k or source == b"model", "popularity lists are full"


def test_lists_are_training_recommends_padded_to_k(tmp_path, rec, trained, prepared):
    """K = the whole catalogue: every known user has seen something, so every list is short and padded."""
    k = len(rec.item_vocab)
    known = [str(u) for u in vocabulary(prepared.parent / "workflow", "user_id").iloc[[0, 5, 50]]]
    answer = RecommendModel(rec, k).answer([u.encode() for u in [*known, "424242", "not-an-id"]])
    cli = cli_lists(tmp_path, trained, prepared, [*known, "424242"], k)
    assert answer["item_ids"].shape == (5, k) and answer["scores"].shape == (5, k) and answer["scores"].dtype == np.float32
    first = {name: values[:4] for name, values in answer.items()}
    assert_lists_are_the_clis(first, cli, [*known, "424242"], [b"model"] * 3 + [b"popularity"])
    assert answer["source"][4, 0] == b"popularity" and (answer["item_ids"][4] == answer["item_ids"][3]).all()


def test_vae_lists_are_training_recommends_and_users_without_history_get_popularity(tmp_path, rec_vae, trained_vae,
                                                                                     prepared_lists):
    """Mult-VAE: train and held-out users are folded in; users the workflow knows but who have no positive in
    --data (too few to keep), and unknown ids, get the most popular items, as training.recommend gives them."""
    train, test, without = users_by_history(prepared_lists)
    assert without, "the lists data has no user without positives: nothing to check"
    users = [train[0], train[7], test[0], test[3], without[0], without[-1], "424242"]
    sources = [b"model"] * 4 + [b"popularity"] * 3
    k = len(rec_vae.item_vocab)
    answer = RecommendModel(rec_vae, k).answer([u.encode() for u in users])
    assert answer["item_ids"].shape == (7, k) and answer["scores"].dtype == np.float32
    assert_lists_are_the_clis(answer, cli_lists(tmp_path, trained_vae, prepared_lists, users, k), users, sources)
    # and, independently of training.recommend: the model rows are the fold-in logits, best first, unseen items only
    have, seen = positives(prepared_lists), everything(prepared_lists)
    codes = rec_vae.encode_users(users[:4])
    logits = fold_in_logits(rec_vae.model, [have[c] for c in codes], rec_vae.n_items)
    items = rec_vae.items.encode(answer["item_ids"][:4].ravel(), missing=-1, strict=False).reshape(4, k)
    for row in range(4):
        shown = items[row][items[row] >= 0]
        assert not set(shown) & seen[codes[row]], "an item the user has (positive or known) was recommended"
        np.testing.assert_allclose(answer["scores"][row, :len(shown)], logits[row, shown], rtol=1e-5, atol=1e-6)
        assert (np.diff(answer["scores"][row, :len(shown)]) <= 0).all()


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


def test_vae_score_is_the_items_logit_after_folding_in_the_users_history(rec_vae, prepared_lists, trained_vae):
    """Raw pairs: a train user, a held-out user, a user without history and an unknown one (both fold in nothing),
    an unknown item (the out-of-vocabulary index); split over passes of --batch-users users, the same answer."""
    train, test, without = users_by_history(prepared_lists)
    items = vocabulary(prepared_lists / "workflow", "item_id")
    raw = [(train[0], items.iloc[0]), (train[0], items.iloc[9]), (test[1], items.iloc[3]), (without[0], items.iloc[3]),
           ("424242", items.iloc[3]), (train[2], "not-an-item"), (test[1], items.iloc[0])]
    got = ScoreModel(rec_vae).answer([str(u).encode() for u, _ in raw], [str(i).encode() for _, i in raw])["score"]
    have = positives(prepared_lists)
    users = rec_vae.users.encode([u for u, _ in raw], missing=2, strict=False)
    codes = rec_vae.items.encode([i for _, i in raw], missing=2, strict=False)
    logits = fold_in_logits(rec_vae.model, [have.get(int(u), set()) for u in users], rec_vae.n_items)
    assert got.shape == (7, 1) and got.dtype == np.float32 and codes[5] == 2 and users[4] == 2
    np.testing.assert_allclose(got.ravel(), logits[np.arange(7), codes], rtol=1e-5, atol=1e-6)
    assert got[3, 0] == got[4, 0], "no history and an unknown user both fold in nothing"
    # many pairs of many users, in passes of 3 users: each pair its user's logit
    rng = np.random.default_rng(0)
    many_users, many_items = rng.choice(train + test, 40), rng.choice(items.to_numpy(), 40)
    small = ScoreModel(Recommender(trained_vae, [prepared_lists], batch_users=3))
    again = small.answer([str(u).encode() for u in many_users], [str(i).encode() for i in many_items])["score"].ravel()
    users = rec_vae.users.encode(many_users.tolist(), missing=-1)
    logits = fold_in_logits(rec_vae.model, [have[int(u)] for u in users], rec_vae.n_items)
    np.testing.assert_allclose(again, logits[np.arange(40), rec_vae.items.encode(many_items.tolist(), missing=-1)],
                               rtol=1e-5, atol=1e-6)

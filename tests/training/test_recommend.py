"""`python -m training.recommend`: raw ids in and out, history excluded, unknown users flagged, bad requests refused."""
import pandas as pd

from contract.feature_spec import FeatureSpec
from etl.prepare import PrepareConfig, prepare
from training.recommend import main as recommend_main

from ..helpers import train, train_fails, truncated_vocabulary, vocabulary, write_byo_dataset, write_ratings_csv


def test_recommend_excludes_history_and_flags_unknown_users(tmp_path, prepared, trained, capsys):
    workflow = prepared.parent / "workflow"
    users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
    out = tmp_path / "recs.parquet"
    chosen = [str(u) for u in users.iloc[:3]] + ["424242"]
    assert recommend_main(["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(prepared),
                           "--users", ",".join(chosen), "--topk", "7", "--output", str(out)]) == 0
    recs = pd.read_parquet(out)
    assert len(recs) == 4 * 7 and recs["user"].tolist()[::7] == chosen
    spec = FeatureSpec.from_yaml(prepared)
    history = pd.concat([spec.read("train"), spec.read("test").query("label == 1")])
    raw_pairs = set(zip(users.loc[history["user_id"]].astype(str), items.loc[history["item_id"]].astype(str)))
    model_rows = recs[recs["source"] == "model"]
    assert not any((u, i) in raw_pairs for u, i in zip(model_rows["user"], model_rows["item"]))
    for _, group in model_rows.groupby("user"):
        assert group["score"].is_monotonic_decreasing and group["item"].nunique() == 7
    assert (recs[recs["user"] == "424242"]["source"] == "popularity").all()
    assert "1 unknown to the workflow" in capsys.readouterr().err


def test_recommend_all_users_and_bad_requests(tmp_path, prepared, trained, capsys):
    workflow = prepared.parent / "workflow"
    base = ["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(prepared)]
    assert recommend_main(base + ["--all-users", "--topk", "3", "--output", str(tmp_path / "all.csv")]) == 0
    spec = FeatureSpec.from_yaml(prepared)
    n_users = spec.user_cardinality - spec.first_index
    assert len(pd.read_csv(tmp_path / "all.csv")) == 3 * n_users
    assert recommend_main(base + ["--all-users", "--topk", "100000", "--output", str(tmp_path / "x.csv")]) == 2
    assert "catalogue size" in capsys.readouterr().err
    other = write_byo_dataset(tmp_path / "byo")
    assert recommend_main(["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(other),
                           "--all-users", "--output", str(tmp_path / "y.csv")]) == 2
    assert "another dataset" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()



def test_a_truncated_vocabulary_is_one_line(tmp_path, prepared, trained, capsys):
    workflow = truncated_vocabulary(prepared.parent / "workflow", tmp_path / "wf")
    code = recommend_main(["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(prepared),
                           "--users", "1", "--output", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unique.item_id.parquet is damaged or not parquet" in err[0], err
    assert not (tmp_path / "r.csv").exists()


def test_recommend_refuses_a_workflow_that_did_not_encode_the_data(tmp_path, prepared, trained, synthetic_raw, capsys):
    """Same ids, another fit (other frequencies, so another order): the workflow id tells them apart."""
    ratings = pd.read_csv(synthetic_raw)
    rare = ratings["movieId"].value_counts().index[-1]
    pd.concat([ratings] + [ratings[ratings["movieId"] == rare]] * 50).to_csv(tmp_path / "skewed.csv", index=False)
    prepare(PrepareConfig(input=tmp_path / "skewed.csv", output=tmp_path / "other", workflow_dir=tmp_path / "other-wf",
                          negatives=5, quiet=True))
    code = recommend_main(["--checkpoint", str(trained), "--workflow", str(tmp_path / "other-wf"), "--data",
                           str(prepared), "--users", "1", "--output", str(tmp_path / "r.csv")])
    assert code == 2 and "do not belong together" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_all_users_come_in_raw_id_order_with_one_meaning_per_column(tmp_path, prepared, trained, capsys):
    out = tmp_path / "all.csv"
    args = ["--checkpoint", str(trained), "--workflow", str(prepared.parent / "workflow"),
            "--data", str(prepared), "--all-users", "--topk", "2", "--output", str(out)]
    assert recommend_main(args) == 0
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["user", "rank", "item", "source", "score", "popularity"]
    users = recs["user"].drop_duplicates().tolist()
    assert users == sorted(users)
    assert recs["score"].notna().all() and recs["popularity"].notna().all()
    # popularity: the item's train positives, on every row
    spec = FeatureSpec.from_yaml(prepared)
    counts = spec.read("train")["item_id"].value_counts()
    items = vocabulary(prepared.parent / "workflow", "item_id")
    by_raw = {str(raw): int(counts.get(index, 0)) for index, raw in items.items()}
    assert recs["popularity"].tolist() == [by_raw[str(i)] for i in recs["item"]]
    # an existing output is replaced only with --overwrite
    before = out.read_bytes()
    assert recommend_main([*args[:-2], "--topk", "3", "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert recommend_main([*args[:-2], "--topk", "3", "--output", str(out), "--overwrite"]) == 0
    assert len(pd.read_csv(out)) == 3 * len(users)


def test_users_who_have_seen_almost_everything_get_shorter_lists(tmp_path, capsys):
    rows = [(1, i, 5.0, i) for i in range(1, 7)] + [(u, i, 4.0, 10 * u + i) for u in (2, 3, 4) for i in (1, 2, 7, 8)]
    raw = write_ratings_csv(tmp_path / "ratings.csv", rows)
    prepare(PrepareConfig(input=raw, output=tmp_path / "d", workflow_dir=tmp_path / "wf", negatives=1, quiet=True))
    train("--data", tmp_path / "d", "-e", "1", "-b", "20", "-f", "4", "--layers", "8", "4", "-k", "1",
          "--checkpoint_dir", tmp_path / "ckpt")
    out = tmp_path / "recs.csv"
    assert recommend_main(["--checkpoint", str(tmp_path / "ckpt" / "model.pth"), "--workflow", str(tmp_path / "wf"),
                           "--data", str(tmp_path / "d"), "--users", "1,2,999", "--topk", "4",
                           "--output", str(out)]) == 0
    recs = pd.read_csv(out)
    assert recs[recs["user"] == 1]["item"].tolist() in ([7, 8], [8, 7])  # 8 items, 6 seen: 2 left, no padding
    assert len(recs[recs["user"] == 2]) == 4 and recs["score"].notna().sum() == 6
    unknown = recs[recs["user"] == 999]
    assert (unknown["source"] == "popularity").all() and unknown["score"].isna().all()
    assert unknown["popularity"].is_monotonic_decreasing and unknown["popularity"].notna().all()
    assert "fewer than 4 items" in capsys.readouterr().err


def test_amp_scores_in_low_precision_with_nearly_the_same_top_items(prepared, trained):
    import numpy as np
    import torch

    from training.recommend import Recommender

    users = np.arange(3, 43)
    exact_scores, exact_items = Recommender(trained, [prepared]).top(users, 10)
    fast_scores, fast_items = Recommender(trained, [prepared], amp=True).top(users, 10)
    fast, exact = torch.from_numpy(fast_scores), torch.from_numpy(exact_scores)
    assert not torch.allclose(fast, exact, rtol=0, atol=1e-4)  # bf16 arithmetic: scores move ...
    assert torch.allclose(fast, exact, rtol=0, atol=0.05)  # ... by bf16's rounding, no more
    shared = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_items, fast_items)])
    assert shared > 0.8, shared


def test_a_checkpoint_of_the_other_layout_is_one_line(tmp_path, prepared, prepared_lists, trained, capsys):
    """A NeuMF checkpoint with lists data (once a KeyError: 'label_ch'), and --mode test likewise."""
    out = tmp_path / "r.csv"
    assert recommend_main(["--checkpoint", str(trained), "--data", str(prepared_lists), "--users", "1",
                           "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(neumf) needs the pairs layout" in err[0] and not out.exists()
    assert "(neumf) needs the pairs layout" in train_fails("--mode", "test", "--data", prepared_lists,
                                                           "--load_checkpoint_path", trained)

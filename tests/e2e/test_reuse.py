"""Reuse on new data: `etl transform` with a saved workflow, continued training, recommendations."""
import json

import pandas as pd
import pytest
import torch

from etl.__main__ import main as etl_main
from contract.feature_spec import FeatureSpec
from etl.workflow import OOV_INDEX
from training.recommend import main as recommend_main

from ..helpers import write_byo_dataset
from ..helpers import run_module, vocabulary, write_ratings_csv


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("ckpt")
    result = run_module("training", "--data", prepared, "-e", "1", "-b", "4096", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", ckpt)
    assert result.returncode == 0, result.stderr[-2000:]
    return ckpt / "model.pth"


def _new_ratings(tmp_path, prepared):
    workflow = prepared.parent / "workflow"
    users, items = vocabulary(workflow, "user_id"), vocabulary(workflow, "item_id")
    rows = [(users.iloc[0], items.iloc[1], 4.0, 5), (987654, items.iloc[0], 3.0, 7),
            (users.iloc[2], 555555, 5.0, 6), (users.iloc[1], items.iloc[2], 2.5, 1)]
    return write_ratings_csv(tmp_path / "new" / "ratings.csv", rows), users, items


def test_transform_keeps_known_ids_and_maps_unseen_to_oov(tmp_path, prepared, capsys):
    raw, users, items = _new_ratings(tmp_path, prepared)
    out = tmp_path / "encoded"
    assert etl_main(["transform", "--workflow", str(prepared.parent / "workflow"), "--input", str(raw),
                     "--output", str(out), "--quiet"]) == 0
    frame = pd.read_parquet(out / "data")
    assert frame["user_id"].tolist() == [users.index[0], OOV_INDEX, users.index[2], users.index[1]]
    assert frame["item_id"].tolist() == [items.index[1], items.index[0], OOV_INDEX, items.index[2]]
    assert frame["timestamp"].tolist() == [5, 7, 6, 1] and frame["rating"].tolist() == [4.0, 3.0, 5.0, 2.5]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["oov_user_rows"] == 1 and stats["oov_item_rows"] == 1 and stats["rows"] == 4
    spec, original = FeatureSpec.from_yaml(out), FeatureSpec.from_yaml(prepared)
    assert (spec.user_cardinality, spec.item_cardinality) == (original.user_cardinality, original.item_cardinality)


def test_continue_training_on_transformed_data(tmp_path, prepared, trained):
    raw, _, _ = _new_ratings(tmp_path, prepared)
    out = tmp_path / "encoded"
    assert etl_main(["transform", "--workflow", str(prepared.parent / "workflow"), "--input", str(raw),
                     "--output", str(out), "--quiet"]) == 0
    result = run_module("torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training",
                        "--data", out, "-e", "1", "-b", "20", "-f", "8", "--layers", "16", "8",
                        "--init_from", trained, "--checkpoint_dir", tmp_path / "continued")
    assert result.returncode == 0, result.stderr[-2000:]
    before = torch.load(trained, weights_only=True)
    after = torch.load(tmp_path / "continued" / "model.pth", weights_only=True)
    assert after["meta"]["cardinalities"] == before["meta"]["cardinalities"]
    assert not torch.equal(after["model"]["final.weight"], before["model"]["final.weight"])


@pytest.mark.parametrize("case", ["not a workflow", "missing id column"])
def test_transform_bad_input(tmp_path, prepared, capsys, case):
    workflow, raw = prepared.parent / "workflow", write_ratings_csv(tmp_path / "r.csv", [(1, 2, 3.0, 4)])
    if case == "not a workflow":
        workflow = tmp_path
    else:
        raw.write_text("userId,rating,timestamp\n1,3,4\n")
    code = etl_main(["transform", "--workflow", str(workflow), "--input", str(raw), "--output", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o").exists()
    assert {"not a workflow": "is not a saved workflow", "missing id column": "no item column"}[case] in \
        capsys.readouterr().err


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
    assert "unknown user" in capsys.readouterr().err


def test_recommend_all_users_and_bad_requests(tmp_path, prepared, trained, capsys):
    workflow = prepared.parent / "workflow"
    base = ["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(prepared)]
    assert recommend_main(base + ["--all-users", "--topk", "3", "--output", str(tmp_path / "all.csv")]) == 0
    n_users = FeatureSpec.from_yaml(prepared).user_cardinality - 3
    assert len(pd.read_csv(tmp_path / "all.csv")) == 3 * n_users
    assert recommend_main(base + ["--all-users", "--topk", "100000", "--output", str(tmp_path / "x.csv")]) == 2
    assert "catalogue size" in capsys.readouterr().err
    other = write_byo_dataset(tmp_path / "byo")
    assert recommend_main(["--checkpoint", str(trained), "--workflow", str(workflow), "--data", str(other),
                           "--all-users", "--output", str(tmp_path / "y.csv")]) == 2
    assert "another dataset" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()

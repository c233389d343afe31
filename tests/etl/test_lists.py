"""`etl prepare --split users` on real NVTabular and Dask: the lists, their FeatureSpec, the saved workflow,
a LocalCluster run equal to a local one, inputs without timestamps, bad input."""
import json

import numpy as np
import pandas as pd
import pytest

from contract.chunks import read_parquet_lists
from contract.feature_spec import FeatureSpec
from etl.__main__ import main
from etl.prepare import PrepareConfig, prepare
from etl.workflow import FIRST_ID, load_workflow

from ..helpers import vocabulary


def lists_of(spec: FeatureSpec, mapping: str) -> dict:
    """{user: (list, ...)} of every list feature of a mapping, read back from its parquet files."""
    chunk = spec.chunks(mapping)[0]
    features = [f for f in chunk["features"] if spec.is_multivalued(f)]
    out = {}
    for path in chunk["files"]:
        data = read_parquet_lists(path, [spec.user_feature, *features])
        for row, user in enumerate(data[spec.user_feature]):
            out[int(user)] = tuple(tuple(int(i) for i in data[f][1][data[f][0][row]:data[f][0][row + 1]])
                                   for f in features)
    return out


def test_lists_follow_the_raw_data(prepared_lists, synthetic_raw):
    spec = FeatureSpec.from_yaml(prepared_lists)
    stats = json.loads((prepared_lists / "stats.json").read_text())
    assert spec.is_lists and spec.layout == "lists" and set(spec.source_spec) == {"train", "validation", "test", "known"}
    assert spec.is_multivalued("item_id") and spec.is_multivalued("fold_in") and not spec.is_multivalued("user_id")
    assert len(spec.source_spec["train"][0]["files"]) == 8 == stats["train_partitions"]
    users, items = vocabulary(spec.workflow_dir, "user_id"), vocabulary(spec.workflow_dir, "item_id")
    raw = pd.read_csv(synthetic_raw)
    raw["user"] = raw["userId"].map(pd.Series(users.index, index=users.to_numpy()))
    raw["item"] = raw["movieId"].map(pd.Series(items.index, index=items.to_numpy()))
    positives = raw[raw["rating"] >= 3.5].sort_values(["timestamp", "item"], kind="stable")
    expected = {u: tuple(g.drop_duplicates("item")["item"]) for u, g in positives.groupby("user", sort=False)}

    train = {u: lists[0] for u, lists in lists_of(spec, "train").items()}
    assert train == {u: expected[u] for u in train}, "train lists: distinct positives in time order"
    assert all(len(v) >= 5 for v in train.values())
    assert set(expected) - set(train) - {u for m in ("validation", "test") for u in lists_of(spec, m)} == \
        {u for u, v in expected.items() if len(v) < 5}
    train_items = {i for v in train.values() for i in v}
    for mapping in ("validation", "test"):
        heldout = lists_of(spec, mapping)
        assert len(heldout) == 40 == stats[f"{mapping}_users"]
        for user, (fold_in, target) in heldout.items():
            kept = [i for i in expected[user] if i in train_items]
            assert sorted(fold_in + target) == sorted(kept) and len(target) == max(1, len(kept) // 5)
            assert list(fold_in) == [i for i in kept if i not in target]
    known = lists_of(spec, "known")
    below = raw[raw["rating"] < 3.5].groupby("user")["item"].agg(set)
    user = next(iter(known))
    assert set(known[user][0]) == below[user] - set(expected.get(user, ()))
    assert stats["train_items"] == len(train_items) and spec.item_cardinality == raw["movieId"].nunique() + FIRST_ID

    workflow = load_workflow(spec.workflow_dir)
    assert set(workflow.output_schema.column_names) == {"user_id", "item_id_list", "label_list"}


def test_local_cluster_matches_local_scheduler_and_the_workflow_reapplies(tmp_path, synthetic_raw, prepared_lists):
    out = tmp_path / "cluster"
    prepare(PrepareConfig(input=synthetic_raw, output=out, min_rating=3.5, seed=5, split="users", heldout_users=40,
                          workers=2, quiet=True))
    local, cluster = FeatureSpec.from_yaml(prepared_lists), FeatureSpec.from_yaml(out)
    assert cluster.workflow_id == local.workflow_id
    for mapping in ("train", "validation", "test", "known"):
        assert lists_of(cluster, mapping) == lists_of(local, mapping), mapping
    # the saved workflow encodes the same data again without a refit: the same lists
    again = tmp_path / "again"
    stats = prepare(PrepareConfig(input=synthetic_raw, output=again, workflow=local.workflow_dir, seed=5,
                                  split="users", heldout_users=40, quiet=True))
    assert not stats["workflow_refit"] and stats["oov_rows_dropped"] == 0
    assert lists_of(FeatureSpec.from_yaml(again), "train") == lists_of(local, "train")


def test_pairs_without_timestamps_via_the_command_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", int(i)) for u in range(30) for i in rng.choice(40, 8, replace=False)]
    pd.DataFrame(rows, columns=["userId", "movieId"]).to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["prepare", "--input", str(tmp_path / "pairs.csv"), "--output", str(tmp_path / "out"),
                 "--split", "users", "--heldout-users", "3", "--partitions", "2", "--quiet"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["train_users"] == 24 and stats["validation_users"] == stats["test_users"] == 3
    spec = FeatureSpec.from_yaml(tmp_path / "out")
    items = vocabulary(spec.workflow_dir, "item_id")
    # no timestamps: every row is at time 0, so a list is in encoded-item order
    for (lists,) in lists_of(spec, "train").values():
        assert list(lists) == sorted(lists) and len(lists) == 8
    assert set(items) <= {str(i) for i in range(40)}  # string user ids make the CSV's ids strings, kept exactly


@pytest.mark.parametrize("argv, message", [
    (["--heldout-users", "20"], "--heldout-users 20: only 30 users have at least 5 positives"),
    (["--heldout-users", "0"], "--heldout-users must be at least 1"),
    (["--split", "time", "--heldout-users", "3"], "--heldout-users applies to --split users"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    pd.DataFrame([(u, i) for u in range(30) for i in range(6)], columns=["userId", "movieId"]).to_csv(
        tmp_path / "pairs.csv", index=False)
    argv = ["prepare", "--input", str(tmp_path / "pairs.csv"), "--output", str(tmp_path / "out"), "--split", "users",
            "--quiet", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_time_split_refuses_a_lists_workflow(tmp_path, prepared_lists, synthetic_raw, capsys):
    code = main(["prepare", "--input", str(synthetic_raw), "--output", str(tmp_path / "o"), "--workflow",
                 str(prepared_lists / "workflow"), "--quiet"])
    assert code == 2 and "fitted by `etl prepare --split users`" in capsys.readouterr().err

"""`etl prepare` end to end on real NVTabular and Dask: ids, split, negatives, spec, workflow."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.feature_spec import FeatureSpec
from contract.lock import lock_path
from etl.prepare import PrepareConfig, prepare
from etl.workflow import FIRST_ID, load_workflow

from ..helpers import ROOT, finish, paused, run_module, vocabulary, write_ratings_csv


def _raw_pairs(raw_csv):
    raw = pd.read_csv(raw_csv)
    return raw.sort_values("timestamp").drop_duplicates(["userId", "movieId"])


def test_outputs_follow_the_contract(prepared, synthetic_raw):
    spec = FeatureSpec.from_yaml(prepared / "feature_spec.yaml")
    stats = json.loads((prepared / "stats.json").read_text())
    train, test = spec.read("train"), spec.read("test")
    raw = _raw_pairs(synthetic_raw)
    n_users, n_items = raw["userId"].nunique(), raw["movieId"].nunique()
    assert spec.user_cardinality == n_users + FIRST_ID and spec.item_cardinality == n_items + FIRST_ID
    assert spec.first_index == FIRST_ID and spec.workflow_id == stats["workflow_id"]
    spec.check_ids(train, "train")
    spec.check_ids(test, "test")
    assert train[["user_id", "item_id"]].min().min() >= FIRST_ID
    assert len(spec.source_spec["train"][0]["files"]) == 8 == stats["train_partitions"]
    # every deduplicated interaction is in train or is a test or validation positive
    series = test.to_numpy().reshape(-1, 51, 3)
    validation = spec.read("validation").to_numpy().reshape(-1, 51, 3)
    assert (series[:, 0, 2] == 1).all() and (series[:, 1:, 2] == 0).all()
    assert len(train) + len(series) + len(validation) == len(raw) == \
        stats["train_rows"] + stats["test_series"] + stats["validation_series"]
    # users with 2+ interactions each get exactly one test series, with 3+ one validation series
    counts = raw.groupby("userId").size()
    assert len(series) == (counts >= 2).sum() and len(validation) == (counts >= 3).sum()
    assert len(np.unique(series[:, :, 0])) == len(series) and (series[:, :, 0] == series[:, :1, 0]).all()


def test_negatives_verified_and_positive_is_latest(prepared, synthetic_raw):
    spec = FeatureSpec.from_yaml(prepared)
    train, test = spec.read("train"), spec.read("test")
    held = pd.concat([test, spec.read("validation")]).query("label == 1")
    seen = set(zip(train["user_id"], train["item_id"])) | set(zip(held["user_id"], held["item_id"]))
    series = test.to_numpy().astype(np.int64).reshape(-1, 51, 3)
    for row in series:
        user, items = row[0, 0], row[:, 1]
        assert len(set(items)) == 51
        assert not any((user, i) in seen for i in items[1:])
    # decode with the saved vocabularies and check the positive is each user's latest rating
    workflow_dir = prepared.parent / "workflow"
    users, items = vocabulary(workflow_dir, "user_id"), vocabulary(workflow_dir, "item_id")
    raw = _raw_pairs(synthetic_raw)
    latest = raw.sort_values(["timestamp", "movieId"]).groupby("userId").tail(1).set_index("userId")
    for row in series[:50]:
        raw_user, raw_item = users[row[0, 0]], items[row[0, 1]]
        assert latest.loc[raw_user, "timestamp"] == raw[(raw.userId == raw_user) & (raw.movieId == raw_item)]["timestamp"].iloc[0]


def test_saved_workflow_reloads_and_reproduces_the_encoding(prepared, synthetic_raw):
    workflow = load_workflow(prepared.parent / "workflow")
    import nvtabular as nvt

    from etl.readers import read_ratings

    encoded = workflow.transform(nvt.Dataset(read_ratings(synthetic_raw, "ml-20m"), cpu=True)).to_ddf().compute()
    spec = FeatureSpec.from_yaml(prepared)
    train = spec.read("train")
    pairs = set(zip(encoded["user_id"], encoded["item_id"]))
    assert set(zip(train["user_id"], train["item_id"])) <= pairs


def test_workflows_saved_before_the_graphs_moved_to_workflows_still_find_their_ops():
    """Saved workflows pickle their ops by module and name: the ops' former homes in etl keep them."""
    import etl.lists
    import etl.workflow
    import workflows.lists
    import workflows.pairs

    assert etl.workflow.RatingAtLeast is workflows.pairs.RatingAtLeast
    assert etl.lists.EncodedKeyGroupby is workflows.lists.EncodedKeyGroupby


def test_local_cluster_matches_local_scheduler(tmp_path, synthetic_raw, prepared):
    out = tmp_path / "cluster"
    prepare(PrepareConfig(input=synthetic_raw, output=out, workflow_dir=tmp_path / "wf", negatives=50, seed=5,
                          workers=2, quiet=True))
    for mapping in ("train", "test"):
        a = FeatureSpec.from_yaml(prepared).read(mapping)
        b = FeatureSpec.from_yaml(out).read(mapping)
        pd.testing.assert_frame_equal(a, b)


def test_min_rating_and_single_interaction_users(tmp_path):
    raw = write_ratings_csv(tmp_path / "ratings.csv", [
        (1, 10, 5.0, 1), (1, 11, 2.0, 2), (1, 12, 4.0, 3),  # the 2.0 is known, not a positive, at --min-rating 4
        (2, 10, 4.5, 5),                                      # one interaction: train only
        (3, 12, 4.0, 1), (3, 10, 4.0, 9),
    ] + [(9, i, 4.0, i) for i in range(20, 30)])
    stats = prepare(PrepareConfig(input=raw, output=tmp_path / "out", negatives=2, min_rating=4.0, quiet=True))
    assert stats["interactions"] == 16 and stats["test_series"] == 3 and stats["train_rows"] == 11
    assert stats["validation_series"] == 1  # only user 9 has a third positive
    assert stats["known_pairs"] == 1
    # the workflow is saved with its data by default, and the FeatureSpec says where
    spec = FeatureSpec.from_yaml(tmp_path / "out")
    assert spec.workflow_dir == (tmp_path / "out" / "workflow").resolve()
    vocab = vocabulary(spec.workflow_dir, "item_id")
    known = spec.read("known")
    assert known["item_id"].map(vocab).tolist() == [11] and known["user_id"].nunique() == 1
    assert vocab.index.min() == FIRST_ID


@pytest.mark.parametrize("partitions", [3])
def test_partition_count_is_configurable(tmp_path, synthetic_raw, partitions):
    prepare(PrepareConfig(input=synthetic_raw, output=tmp_path / "o", workflow_dir=tmp_path / "w",
                          partitions=partitions, quiet=True))
    spec = FeatureSpec.from_yaml(tmp_path / "o")
    assert len(spec.source_spec["train"][0]["files"]) == partitions


def test_killed_run_leaves_nothing_after_the_rerun_and_outputs_honour_the_umask(tmp_path, synthetic_raw):
    """kill -9 mid-run: only hidden temporaries remain; the rerun sweeps them and writes 0755/0644."""
    out, wf = tmp_path / "data", tmp_path / "wf"
    argv = [sys.executable, "-m", "etl", "prepare", "--input", str(synthetic_raw), "--output", str(out),
            "--workflow-dir", str(wf), "--negatives", "5", "--quiet"]
    proc = subprocess.Popen(argv, cwd=ROOT, preexec_fn=lambda: os.umask(0o022))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".data.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL, "prepare finished before it could be killed"
    assert not out.exists() and not wf.exists() and list(tmp_path.glob(".*.tmp-*"))
    rerun = subprocess.run(argv, cwd=ROOT, preexec_fn=lambda: os.umask(0o022), timeout=300)
    assert rerun.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "wf"]
    for path in (out, wf, out / "train", wf / "categories"):
        assert path.stat().st_mode & 0o777 == 0o755, path
    for path in (out / "feature_spec.yaml", out / "stats.json", next((out / "train").iterdir()), wf / "workflow.pkl"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_user_who_rated_everything_is_left_out_of_the_test_split_and_reported(tmp_path):
    """One user who rated the whole catalogue must not abort the ETL (it once asked to 'lower --negatives')."""
    rows = [(1, i, 4.0, i) for i in range(1, 11)] + [(u, i, 4.0, u * 10 + i) for u in (2, 3) for i in (1, 2, 3)]
    raw = write_ratings_csv(tmp_path / "ratings.csv", rows)
    result = subprocess.run([sys.executable, "-m", "etl", "prepare", "--input", str(raw), "--output",
                             str(tmp_path / "out"), "--negatives", "1"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["saturated_users"] == 1 and stats["test_series"] == stats["validation_series"] == 2
    assert stats["train_rows"] == 10 + 2 * 1  # user 1 keeps all ten; users 2 and 3 hold out two each
    assert "1 user(s) have fewer than --negatives 1 unseen items" in result.stderr


def test_applying_a_saved_workflow_refuses_a_second_positive_rule(tmp_path, prepared, capsys):
    from etl.__main__ import main

    code = main(["prepare", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--workflow",
                 str(prepared.parent / "workflow"), "--min-rating", "4"])
    assert code == 2 and "the positive rule is part of the saved workflow" in capsys.readouterr().err


def test_data_without_timestamps_holds_out_a_seeded_random_positive_and_says_so(tmp_path, capsys):
    """The ml-1m pairs, play counts, ratings-only exports: no timestamp column is not a refusal."""
    rows = [(u, (u + 3 * i) % 30 + 1) for u in range(1, 41) for i in range(12)]
    raw = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["userId", "movieId"]).to_csv(raw, index=False)
    stats = prepare(PrepareConfig(input=raw, output=tmp_path / "out", negatives=5, seed=3))
    assert "no timestamps" in capsys.readouterr().err
    assert stats["holdout"] == {"rule": "random", "seed": 3} and stats["test_series"] == stats["validation_series"] == 40
    spec = FeatureSpec.from_yaml(tmp_path / "out")
    assert spec.metadata["holdout"] == {"rule": "random", "seed": 3}
    vocab = vocabulary(spec.workflow_dir, "item_id")
    test = spec.read("test").query("label == 1")
    held = test["item_id"].map(vocab)
    # a random positive per user, not always the same position (ties on a missing timestamp would be)
    assert held.nunique() > 4
    again = prepare(PrepareConfig(input=raw, output=tmp_path / "again", negatives=5, seed=3, quiet=True))
    assert again["holdout"]["rule"] == "random"
    pd.testing.assert_frame_equal(FeatureSpec.from_yaml(tmp_path / "again").read("test"), spec.read("test"))


def test_data_with_timestamps_records_the_latest_rule(prepared):
    assert FeatureSpec.from_yaml(prepared).metadata["holdout"]["rule"] == "latest"
    assert json.loads((prepared / "stats.json").read_text())["holdout"]["rule"] == "latest"


def test_two_runs_into_one_output_the_second_refuses_and_the_first_wins(tmp_path, synthetic_raw):
    """Two real `etl prepare` processes on one --output: once both said "prepared", O held one of them."""
    other = write_ratings_csv(tmp_path / "b.csv", [(u, i, 4.0, i) for u in range(1, 6) for i in range(1, 12)])
    out = tmp_path / "O"
    with paused("etl", "prepare", "--input", synthetic_raw, "--output", out, "--negatives", "5", "--quiet",
                ready=lambda: lock_path(out).exists()) as first:
        second = run_module("etl", "prepare", "--input", other, "--output", out, "--negatives", "5", "--quiet")
    assert second.returncode == 2, second.stderr[-2000:]
    command = " ".join(map(str, [Path(first.args[0]).name, *first.args[1:]]))
    assert second.stderr.strip().splitlines() == [
        f"error: {out} is in use by another run (pid {first.pid}: {command}): wait for it to end or choose another output"]
    assert finish(first).returncode == 0
    assert json.loads((out / "stats.json").read_text())["input"] == str(synthetic_raw)
    assert not lock_path(out).exists()


def test_a_full_disk_is_one_line_naming_the_output(tmp_path, synthetic_raw):
    """Once reported as "cannot read input". A file size limit fails writes as a full disk does."""
    out = tmp_path / "O"
    result = run_module("etl", "prepare", "--input", synthetic_raw, "--output", out, "--quiet", timeout=300,
                        file_size_limit=50_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"error: cannot write {out}: File too large"]
    assert not list(tmp_path.iterdir())

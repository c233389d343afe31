"""The reuse journeys: newer data encoded with the saved workflow, training continued, history kept."""
import json

import pandas as pd
import torch

from contract.feature_spec import FeatureSpec
from contract.vocabulary import vocabulary_fingerprint
from etl.__main__ import main as etl_main

from ..etl.test_transform import _new_ratings
from ..helpers import run_module, torchrun, train, vocabulary


def test_continue_training_on_transformed_data(tmp_path, prepared, trained):
    raw, _, _ = _new_ratings(tmp_path, prepared)
    out = tmp_path / "encoded"
    assert etl_main(["transform", "--workflow", str(prepared.parent / "workflow"), "--input", str(raw),
                     "--output", str(out), "--quiet"]) == 0
    torchrun("training", "--data", out, "-e", "1", "-b", "20", "-f", "8", "--layers", "16", "8", "--init_from", trained,
             "--checkpoint_dir", tmp_path / "continued")
    before = torch.load(trained, weights_only=True)
    after = torch.load(tmp_path / "continued" / "last.pth", weights_only=True)  # model.pth may be the start
    assert after["meta"]["cardinalities"] == before["meta"]["cardinalities"]
    assert not torch.equal(after["model"]["final.weight"], before["model"]["final.weight"])


def _raw_pairs(spec: FeatureSpec, users: pd.Series, items: pd.Series, mappings) -> set:
    """(raw user, raw item) pairs of a prepared folder: its positives and its known interactions."""
    frames = [spec.read(m) for m in mappings if m in spec.source_spec]
    frame = pd.concat([f if m == "known" else f[f["label"] == 1] for f, m in zip(frames, mappings)])
    return set(zip(users.loc[frame["user_id"]].astype(str), items.loc[frame["item_id"]].astype(str)))


def test_older_then_newer_data_never_recommends_what_users_have(tmp_path, synthetic_raw):
    """README's reuse flow: fit on the older ratings (>= 3.5 are positives), encode the newer ones with
    the same workflow (split included, no refit), continue training, recommend with both as history."""
    ratings = pd.read_csv(synthetic_raw)
    cut = ratings["timestamp"].quantile(0.8)
    ratings[ratings["timestamp"] <= cut].to_csv(tmp_path / "older.csv", index=False)
    ratings[ratings["timestamp"] > cut].to_csv(tmp_path / "newer.csv", index=False)
    old, new = tmp_path / "old", tmp_path / "new"
    assert etl_main(["prepare", "--input", str(tmp_path / "older.csv"), "--output", str(old), "--negatives", "20",
                     "--min-rating", "3.5", "--quiet"]) == 0
    assert etl_main(["prepare", "--input", str(tmp_path / "newer.csv"), "--output", str(new), "--negatives", "20",
                     "--workflow", str(old / "workflow"), "--quiet"]) == 0
    old_spec, new_spec = FeatureSpec.from_yaml(old), FeatureSpec.from_yaml(new)
    assert new_spec.workflow_id == old_spec.workflow_id and new_spec.workflow_dir == old_spec.workflow_dir
    stats = json.loads((new / "stats.json").read_text())
    assert stats["workflow_refit"] is False and stats["test_series"] > 0
    assert stats["oov_rows_dropped"] > 0  # users and items that first appear in the newer period
    assert "known" in old_spec.source_spec and "known" in new_spec.source_spec

    small = ["-e", "1", "-b", "4096", "-f", "8", "--layers", "16", "8"]
    train("--data", old, *small, "--checkpoint_dir", tmp_path / "ckpt-old")
    train("--data", new, *small, "--init_from", tmp_path / "ckpt-old" / "model.pth",
          "--checkpoint_dir", tmp_path / "ckpt-new")
    result = run_module("training.recommend", "--checkpoint", tmp_path / "ckpt-new" / "model.pth",
                        "--data", new, old, "--all-users", "--topk", "20", "--output", tmp_path / "recs.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    recs = pd.read_csv(tmp_path / "recs.csv", dtype={"user": str, "item": str})
    users, items = vocabulary(old_spec.workflow_dir, "user_id"), vocabulary(old_spec.workflow_dir, "item_id")
    recommended = set(zip(recs["user"], recs["item"]))
    mappings = ("train", "test", "validation", "known")
    assert not recommended & _raw_pairs(old_spec, users, items, mappings), "older history recommended back"
    assert not recommended & _raw_pairs(new_spec, users, items, mappings), "newer history recommended back"
    # the raw ratings agree: no user is recommended an item they rated in either period
    rated = set(zip(ratings["userId"].astype(str), ratings["movieId"].astype(str)))
    assert not recommended & rated


def test_each_dataset_keeps_its_own_workflow(tmp_path, synthetic_raw):
    """Two outputs with the same folder name no longer share (and replace) one workflows/<name>."""
    ratings = pd.read_csv(synthetic_raw)
    ratings.iloc[::2].to_csv(tmp_path / "a.csv", index=False)
    ratings.iloc[1::2].to_csv(tmp_path / "b.csv", index=False)
    for name in ("a", "b"):
        result = run_module("etl", "prepare", "--input", tmp_path / f"{name}.csv", "--output",
                            tmp_path / name / "here", "--negatives", "5", "--overwrite", "--quiet", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    for name in ("a", "b"):
        spec = FeatureSpec.from_yaml(tmp_path / name / "here")
        files = [spec.vocabulary_file(spec.workflow_dir, f) for f in ("user_id", "item_id")]
        assert vocabulary_fingerprint(files) == spec.workflow_id
    assert not (tmp_path / "workflows").exists()

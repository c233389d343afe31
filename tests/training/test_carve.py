"""A validation set carved from train for data without one: never test, nothing lost, nothing left behind."""
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from contract.feature_spec import FeatureSpec
from training.data.carve import carve_lists, carve_pairs, needs_carving
from training.data.lists import read_lists

from ..helpers import train, write_byo_dataset


def _keys(frame, spec):
    return set(zip(frame[spec.user_feature].tolist(), frame[spec.item_feature].tolist()))


def test_pairs_one_random_positive_per_user_leaves_train_with_negatives_the_user_never_had(tmp_path):
    spec = FeatureSpec.from_yaml(write_byo_dataset(tmp_path / "byo"))
    assert needs_carving(spec)
    train_rows, test = spec.read("train"), spec.read("test")
    carved = carve_pairs(spec, seed=4)
    try:
        new = carved.spec
        assert not needs_carving(new) and new.samples_per_series == spec.samples_per_series
        valid, rest = new.read("validation"), new.read("train")
        length = spec.samples_per_series
        positives = valid.iloc[::length]
        assert (positives[spec.label_feature] == 1).all() and (valid[spec.label_feature].sum() == len(positives))
        assert positives[spec.user_feature].is_unique and len(positives) == train_rows[spec.user_feature].nunique()
        # nothing lost, nothing doubled: the carved positives and the rest are the train rows
        assert _keys(positives, spec) | _keys(rest, spec) == _keys(train_rows, spec)
        assert not _keys(positives, spec) & _keys(rest, spec) and len(rest) + len(positives) == len(train_rows)
        # negatives: items the user has nowhere (train, test positives)
        had = _keys(train_rows, spec) | _keys(test[test[spec.label_feature] == 1], spec)
        assert not _keys(valid[valid[spec.label_feature] == 0], spec) & had
        # test and the other mappings are the data's own files
        pd.testing.assert_frame_equal(new.read("test"), test)
        # seeded: the same seed carves the same, another seed another
        again, other = carve_pairs(spec, seed=4), carve_pairs(spec, seed=5)
        pd.testing.assert_frame_equal(again.spec.read("validation"), valid)
        assert not other.spec.read("validation").equals(valid)
        again.close(), other.close()
    finally:
        carved.close()
    assert not carved.folder.exists()


def test_pairs_with_a_timestamp_channel_carve_each_users_latest(tmp_path):
    folder = tmp_path / "ts"
    folder.mkdir()
    rows = pd.DataFrame({"u": np.repeat(np.arange(30), 5), "i": np.tile(np.arange(5), 30) * 3 + np.repeat(np.arange(30) % 3, 5),
                         "y": np.float32(1), "t": np.tile([5, 1, 9, 3, 2], 30)})
    rows.to_parquet(folder / "train.parquet")
    test = pd.DataFrame({"u": np.repeat(np.arange(30), 3), "i": np.tile([20, 21, 22], 30), "y": np.tile([1.0, 0, 0], 30)})
    test.astype({"y": np.float32}).to_parquet(folder / "test.parquet")
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump({
        "feature_spec": {"u": {"dtype": "torch.int64", "cardinality": 30}, "i": {"dtype": "torch.int64", "cardinality": 25},
                         "y": {"dtype": "torch.float32"}, "t": {"dtype": "torch.int64"}},
        "source_spec": {"train": [{"type": "parquet", "features": ["u", "i", "y", "t"], "files": ["train.parquet"]}],
                        "test": [{"type": "parquet", "features": ["u", "i", "y"], "files": ["test.parquet"]}]},
        "channel_spec": {"user_ch": ["u"], "item_ch": ["i"], "label_ch": ["y"], "timestamp_ch": ["t"]},
        "metadata": {"test_samples_per_series": 3}}))
    carved = carve_pairs(FeatureSpec.from_yaml(folder), seed=0)
    try:
        positives = carved.spec.read("validation").iloc[::3]
        assert positives["i"].tolist() == (rows[rows["t"] == 9]["i"]).tolist()  # the latest of each user
        assert "latest" in carved.what
    finally:
        carved.close()


def _without_validation(prepared_lists: Path, target: Path) -> FeatureSpec:
    shutil.copytree(prepared_lists, target)
    raw = yaml.safe_load((target / "feature_spec.yaml").read_text())
    del raw["source_spec"]["validation"]
    (target / "feature_spec.yaml").write_text(yaml.safe_dump(raw))
    return FeatureSpec.from_yaml(target)


def test_lists_carve_held_out_users_out_of_train_their_items_split_into_fold_in_and_target(prepared_lists, tmp_path):
    spec = _without_validation(prepared_lists, tmp_path / "lists")
    before = read_lists(spec, "train", [spec.user_feature, spec.item_feature])
    carved = carve_lists(spec, seed=1)
    try:
        new = carved.spec
        held = read_lists(new, "validation", [new.user_feature, new.fold_in_feature, new.target_feature])
        rest = read_lists(new, "train", [new.user_feature, new.item_feature])
        users = held[new.user_feature]
        assert len(users) >= 1 and not set(users) & set(rest[new.user_feature])
        assert sorted([*users, *rest[new.user_feature]]) == sorted(before[spec.user_feature])
        lists = {u: set(before[spec.item_feature][1][a:b]) for u, a, b in zip(
            before[spec.user_feature], before[spec.item_feature][0][:-1], before[spec.item_feature][0][1:])}
        (fo, fv), (to, tv) = held[new.fold_in_feature], held[new.target_feature]
        for row, user in enumerate(users):
            fold_in, target = set(fv[fo[row]:fo[row + 1]]), set(tv[to[row]:to[row + 1]])
            assert target and not fold_in & target and fold_in | target == lists[user]
    finally:
        carved.close()


def test_training_without_a_validation_mapping_chooses_on_the_carved_set_and_removes_it(prepared_lists, tmp_path):
    data = _without_validation(prepared_lists, tmp_path / "lists").base_directory
    before = set(Path(tempfile.gettempdir()).glob(".carved-validation.tmp-*"))
    summary = train("--data", data, "-e", "2", "-b", "64", "--layers", "32", "8", "--checkpoint_dir", tmp_path / "c")
    assert summary["selected_on"] == "validation" and "carved from train" in summary["validation"]
    assert summary["best_valid_ndcg"] is not None and summary["best_ndcg"] is not None
    # nothing of this run is left (a folder a killed run left may even have been swept meanwhile)
    assert not set(Path(tempfile.gettempdir()).glob(".carved-validation.tmp-*")) - before

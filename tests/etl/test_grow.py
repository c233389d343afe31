"""`etl prepare --workflow SAVED --grow`: new users and items get the next indices, every old index is kept."""
import json

import pandas as pd
import pytest

from contract.feature_spec import FeatureSpec
from etl.__main__ import main
from etl.grow import LINEAGE_FILE
from etl.prepare import PrepareConfig, prepare
from etl.workflow import FIRST_ID

from ..helpers import vocabulary, write_ratings_csv


def _new_ids_by_frequency(raw: pd.DataFrame, column: str, old: pd.Series) -> list:
    """The ids `old` lacks, most frequent first, ties by value (what --grow appends)."""
    counts = raw[column].value_counts()
    counts = counts[~counts.index.isin(old)]
    return sorted(counts.index, key=lambda v: (-counts[v], v))


def test_grow_appends_new_ids_after_the_old_indices(grown, periods):
    old, new = grown
    newer = pd.read_csv(periods[1])
    old_spec, new_spec = FeatureSpec.from_yaml(old), FeatureSpec.from_yaml(new)
    assert new_spec.workflow_dir == (new / "workflow").resolve()  # saved with the new data
    for column, raw_column in (("user_id", "userId"), ("item_id", "movieId")):
        before, after = vocabulary(old_spec.workflow_dir, column), vocabulary(new_spec.workflow_dir, column)
        assert after.loc[before.index].equals(before), f"an old {column} moved"
        appended = after.loc[FIRST_ID + len(before):].tolist()
        assert appended and appended == _new_ids_by_frequency(newer, raw_column, before)
        assert len(after) + FIRST_ID == new_spec.feature_spec[column]["cardinality"]
    stats = json.loads((new / "stats.json").read_text())
    assert stats["oov_rows_dropped"] == 0 and stats["min_rating"] == 3.5  # the saved workflow's rule, stated
    parent = {"workflow_id": old_spec.workflow_id, "cardinalities": old_spec.table_sizes}
    assert new_spec.encoding["extends"] == [parent]
    assert stats["grown"] == {"extends": old_spec.workflow_id, "cardinalities_before": old_spec.table_sizes,
                              "new_users": new_spec.user_cardinality - old_spec.user_cardinality,
                              "new_items": new_spec.item_cardinality - old_spec.item_cardinality}
    # the older folder is still valid under the grown workflow: same raw ids behind its indices
    train = old_spec.read("train")
    new_spec.check_ids(train, "train")
    users = vocabulary(new_spec.workflow_dir, "user_id")
    assert users.loc[train["user_id"]].tolist() == vocabulary(old_spec.workflow_dir, "user_id").loc[
        train["user_id"]].tolist()


def test_growing_a_grown_workflow_keeps_the_whole_lineage(tmp_path, grown):
    old, new = grown
    write_ratings_csv(tmp_path / "newest.csv", [(9001, 1, 5.0, 10**10), (9001, 2, 4.0, 10**10 + 1),
                                                 (9001, 9002, 5.0, 10**10 + 2)])
    prepare(PrepareConfig(input=tmp_path / "newest.csv", output=tmp_path / "newest", workflow=new / "workflow",
                          grow=True, negatives=5, quiet=True))
    spec = FeatureSpec.from_yaml(tmp_path / "newest")
    ids = [FeatureSpec.from_yaml(folder).workflow_id for folder in (new, old)]
    assert [entry["workflow_id"] for entry in spec.encoding["extends"]] == ids
    assert json.loads((tmp_path / "newest" / "workflow" / LINEAGE_FILE).read_text()) == spec.encoding["extends"]
    assert spec.user_cardinality == FeatureSpec.from_yaml(new).user_cardinality + 1


def test_grow_works_for_the_lists_layout(tmp_path, periods):
    older, newer = periods
    prepare(PrepareConfig(input=older, output=tmp_path / "old", min_rating=3.5, split="users", heldout_users=10,
                          quiet=True))
    stats = prepare(PrepareConfig(input=newer, output=tmp_path / "new", workflow=tmp_path / "old" / "workflow",
                                  grow=True, split="users", heldout_users=10, quiet=True))
    old_spec, new_spec = FeatureSpec.from_yaml(tmp_path / "old"), FeatureSpec.from_yaml(tmp_path / "new")
    assert new_spec.is_lists and stats["oov_rows_dropped"] == 0 and stats["grown"]["new_items"] > 0
    before, after = vocabulary(old_spec.workflow_dir, "item_id"), vocabulary(new_spec.workflow_dir, "item_id")
    assert after.loc[before.index].equals(before)
    assert new_spec.encoding["extends"][0]["workflow_id"] == old_spec.workflow_id


def test_a_saved_workflow_states_its_positive_rule_in_stats(tmp_path, grown, periods):
    stats = prepare(PrepareConfig(input=periods[1], output=tmp_path / "o", workflow=grown[0] / "workflow",
                                  negatives=5, quiet=True))
    assert stats["min_rating"] == 3.5 and "grown" not in stats


@pytest.mark.parametrize("extra, message", [
    ([], "--grow extends a saved workflow: name it with --workflow"),
    (["--workflow", "{old}", "--min-rating", "4"], "the positive rule is part of the saved workflow"),
])
def test_grow_refuses_in_one_line(tmp_path, grown, periods, capsys, extra, message):
    args = [a.replace("{old}", str(grown[0] / "workflow")) for a in extra]
    code = main(["prepare", "--input", str(periods[1]), "--output", str(tmp_path / "o"), "--grow", "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_grow_refuses_ids_of_another_type(tmp_path, grown, capsys):
    write_ratings_csv(tmp_path / "text.csv", [("u1", 1, 5.0, 1), ("u1", 2, 5.0, 2), ("u2", 1, 5.0, 3)])
    code = main(["prepare", "--input", str(tmp_path / "text.csv"), "--output", str(tmp_path / "o"), "--workflow",
                 str(grown[0] / "workflow"), "--grow", "--negatives", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "user_id values are integers but" in err[-1] and "are text" in err[-1]

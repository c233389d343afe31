"""`etl transform`: a saved workflow applied to new raw data, with the same positive rule as `prepare`."""
import json

import pandas as pd
import pytest

from contract.feature_spec import FeatureSpec
from etl.__main__ import main as etl_main
from etl.prepare import PrepareConfig, prepare
from etl.transform import transform
from etl.workflow import OOV_INDEX

from ..helpers import truncated_vocabulary, vocabulary, write_ratings_csv


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
                     "--output", str(out)]) == 0
    assert "2 rows (50.0%) fell to the out-of-vocabulary index 2" in capsys.readouterr().err
    frame = pd.read_parquet(out / "data")
    assert frame["user_id"].tolist() == [users.index[0], OOV_INDEX, users.index[2], users.index[1]]
    assert frame["item_id"].tolist() == [items.index[1], items.index[0], OOV_INDEX, items.index[2]]
    assert frame["timestamp"].tolist() == [5, 7, 6, 1] and frame["rating"].tolist() == [4.0, 3.0, 5.0, 2.5]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["oov_user_rows"] == 1 and stats["oov_item_rows"] == 1 and stats["rows"] == 4
    spec, original = FeatureSpec.from_yaml(out), FeatureSpec.from_yaml(prepared)
    assert (spec.user_cardinality, spec.item_cardinality) == (original.user_cardinality, original.item_cardinality)


BAD = {"not a workflow": "is not a saved workflow", "missing id column": "no item column",
       "truncated vocabulary": "unique.item_id.parquet is damaged or not parquet"}


@pytest.mark.parametrize("case", BAD)
def test_transform_bad_input(tmp_path, prepared, capsys, case):
    workflow, raw = prepared.parent / "workflow", write_ratings_csv(tmp_path / "r.csv", [(1, 2, 3.0, 4)])
    if case == "not a workflow":
        workflow = tmp_path
    elif case == "truncated vocabulary":
        workflow = truncated_vocabulary(workflow, tmp_path / "wf")
    else:
        raw.write_text("userId,rating,timestamp\n1,3,4\n")
    code = etl_main(["transform", "--workflow", str(workflow), "--input", str(raw), "--output", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert BAD[case] in err[-1] and "Traceback" not in "".join(err)


def test_prepare_and_transform_share_one_positive_rule(tmp_path):
    """Ratings below --min-rating are not positives, whether the data is prepared or transformed."""
    rows = [(u, i, 5.0 if (u + i) % 3 else 2.0, 10 * u + i) for u in range(1, 9) for i in range(1, 12)]
    rows += [(9, i, 5.0, i) for i in range(12, 30)]  # a wider catalogue, so test negatives exist
    raw = write_ratings_csv(tmp_path / "ratings.csv", rows)
    prepare(PrepareConfig(input=raw, output=tmp_path / "prepared", workflow_dir=tmp_path / "wf", negatives=2,
                          min_rating=4.0, quiet=True))
    transform(tmp_path / "wf", raw, tmp_path / "transformed", quiet=True)
    spec = FeatureSpec.from_yaml(tmp_path / "prepared")
    prepared = pd.concat([spec.read("train"), spec.read("test").query("label == 1"),
                          spec.read("validation").query("label == 1")])
    transformed = pd.read_parquet(tmp_path / "transformed" / "data")
    assert (transformed["label"] == 1).all() and (transformed["rating"] >= 4).all()
    assert sorted(zip(transformed["user_id"], transformed["item_id"])) == \
        sorted(zip(prepared["user_id"], prepared["item_id"]))
    # the interactions below the rule are known to the user in both outputs
    known_prepared, known_transformed = spec.read("known"), pd.read_parquet(tmp_path / "transformed" / "known")
    assert len(known_prepared) == sum(r[2] < 4 for r in rows) and (known_transformed["rating"] < 4).all()
    assert sorted(zip(known_transformed["user_id"], known_transformed["item_id"])) == \
        sorted(zip(known_prepared["user_id"], known_prepared["item_id"]))

"""The lists layout in the FeatureSpec: multivalued features, its channels, messages naming the field."""
import shutil

import numpy as np
import pytest
import yaml

from contract.errors import UserError
from contract.feature_spec import FeatureSpec


def _copy(prepared_lists, tmp_path, edit):
    folder = tmp_path / "lists"
    shutil.copytree(prepared_lists, folder, ignore=shutil.ignore_patterns("workflow"))
    raw = yaml.safe_load((folder / "feature_spec.yaml").read_text())
    edit(raw)
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump(raw))
    return folder


BREAKS = {
    "no fold-in channel": (lambda r: r["channel_spec"].pop("fold_in_ch"), "channel_spec.fold_in_ch is missing"),
    "target not a list": (lambda r: r["feature_spec"]["target"].pop("multivalued"), r"target \(target_ch\) must be multivalued"),
    "flag not a bool": (lambda r: r["feature_spec"]["item_id"].update(multivalued="yes"), "item_id.multivalued must be"),
    "lists in csv": (lambda r: r["source_spec"]["train"][0].update(type="csv"), "only a parquet chunk can hold"),
    "other cardinality": (lambda r: r["feature_spec"]["fold_in"].update(cardinality=7), "must equal the item cardinality"),
    "list of users": (lambda r: r["feature_spec"]["user_id"].update(multivalued=True), "must not be multivalued"),
    "held-out chunk without target": (lambda r: r["source_spec"]["test"][0]["features"].remove("target"),
                                      "source_spec.test has no chunk with feature 'target'"),
}


@pytest.mark.parametrize("case", BREAKS)
def test_validation_names_the_field(prepared_lists, tmp_path, case):
    edit, message = BREAKS[case]
    with pytest.raises(UserError, match=message):
        FeatureSpec.from_yaml(_copy(prepared_lists, tmp_path, edit))


def test_a_lists_spec_without_held_out_users_needs_no_fold_in_channel(prepared_lists, tmp_path):
    def train_only(raw):
        for key in ("validation", "test"):
            raw["source_spec"].pop(key)
        for key in ("fold_in_ch", "target_ch"):
            raw["channel_spec"].pop(key)

    spec = FeatureSpec.from_yaml(_copy(prepared_lists, tmp_path, train_only))
    assert spec.is_lists and spec.layout == "lists"
    with pytest.raises(UserError, match=r"item_id ids span \[0, 400\] but feature_spec.item_id.cardinality is 303"):
        spec.check_feature_ids(np.array([0, 400]), "item_id", "train")


def test_the_annotated_example_is_what_the_etl_writes(prepared_lists):
    from tests.helpers import ROOT

    example = yaml.safe_load((ROOT / "feature_specs" / "lists_output.yaml").read_text())
    written = yaml.safe_load((prepared_lists / "feature_spec.yaml").read_text())
    assert example.keys() == written.keys()
    assert example["feature_spec"].keys() == written["feature_spec"].keys()
    assert example["channel_spec"] == written["channel_spec"]
    assert {k: v[0]["features"] for k, v in example["source_spec"].items()} == \
        {k: v[0]["features"] for k, v in written["source_spec"].items()}

"""FeatureSpec load/validate/save, multi-chunk and multi-file reads, messages naming the field."""
import pytest
import yaml

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from ..helpers import write_byo_dataset


def test_round_trip_and_paths_relative_to_the_yaml(prepared, tmp_path):
    spec = FeatureSpec.from_yaml(prepared / "feature_spec.yaml")
    spec.to_yaml(tmp_path / "copy.yaml")
    again = yaml.safe_load((tmp_path / "copy.yaml").read_text())
    assert again == spec.to_dict()
    assert spec.chunks("train")[0]["files"][0].startswith(str(prepared))


@pytest.mark.parametrize("header", [True, False])
def test_byo_csv_chunks_split_over_files(tmp_path, header):
    folder = write_byo_dataset(tmp_path / "byo", header=header)
    spec = FeatureSpec.from_yaml(folder)
    train = spec.read("train")
    assert list(train.columns) == ["customer", "product", "clicked"]
    assert len(train) == 60 * 6 and (train["clicked"] == 1).all()
    assert train["customer"].iloc[0] == 0 and train["customer"].iloc[-1] == 59
    assert spec.user_feature == "customer" and spec.samples_per_series == 6


def _broken(folder, edit):
    raw = yaml.safe_load((folder / "feature_spec.yaml").read_text())
    edit(raw)
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump(raw))
    return folder


BREAKS = {
    "missing section": (lambda r: r.pop("channel_spec"), "section 'channel_spec' is missing"),
    "missing channel": (lambda r: r["channel_spec"].pop("item_ch"), "channel_spec.item_ch is missing"),
    "unknown channel feature": (lambda r: r["channel_spec"].update(user_ch=["who"]), "unknown feature 'who'"),
    "unknown chunk feature": (lambda r: r["source_spec"]["test"][0]["features"].append("price"),
                              "source_spec.test[0].features: unknown feature 'price'"),
    "missing file": (lambda r: r["source_spec"]["train"][1]["files"].append("gone.csv"), "gone.csv does not exist"),
    "missing mapping": (lambda r: r["source_spec"].pop("train"), "source_spec.train is missing"),
    "no cardinality": (lambda r: r["feature_spec"]["product"].pop("cardinality"), "product: needs an integer"),
    "bad chunk type": (lambda r: r["source_spec"]["test"][0].update(type="orc"), "type must be one of"),
}


@pytest.mark.parametrize("case", BREAKS)
def test_validation_names_the_field(tmp_path, case):
    edit, message = BREAKS[case]
    folder = _broken(write_byo_dataset(tmp_path / "byo"), edit)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FeatureSpec.from_yaml(folder)


def test_ids_beyond_cardinality_are_reported(tmp_path):
    folder = _broken(write_byo_dataset(tmp_path / "byo"), lambda r: r["feature_spec"]["product"].update(cardinality=20))
    spec = FeatureSpec.from_yaml(folder)
    with pytest.raises(UserError, match=r"product ids span \[0, 39\] but feature_spec.product.cardinality is 20"):
        spec.check_ids(spec.read("test"), "test")

"""Item counts over train, one function for both layouts: train rows per item (pairs), training users per item
(lists), against counts taken straight from the small files the tests write; an id outside its table is refused."""
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from training.data.popularity import checked_item_counts

from ..helpers import write_byo_dataset

ITEMS = 12
LISTS = [  # (user, items) per row, over two files
    [(0, [3, 4, 5]), (1, [4]), (2, [11, 3, 7, 4])],
    [(3, [5, 6]), (4, [3, 9, 10, 4, 8])],
]


def _byo_with_cardinality(folder, feature: str, cardinality: int) -> FeatureSpec:
    folder = write_byo_dataset(folder)
    raw = yaml.safe_load((folder / "feature_spec.yaml").read_text())
    raw["feature_spec"][feature]["cardinality"] = cardinality
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump(raw))
    return FeatureSpec.from_yaml(folder)


def _lists_folder(folder, rows=LISTS, items=ITEMS):
    """Training users' item lists in two parquet files, with the lists layout's FeatureSpec."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, part in enumerate(rows):
        table = pa.table({"user": pa.array([u for u, _ in part], pa.int64()),
                          "liked": pa.array([v for _, v in part], pa.list_(pa.int64()))})
        pq.write_table(table, folder / f"train_{i}.parquet")
        files.append(f"train_{i}.parquet")
    spec = {
        "feature_spec": {"user": {"dtype": "torch.int64", "cardinality": 6},
                         "liked": {"dtype": "torch.int64", "cardinality": items, "multivalued": True}},
        "source_spec": {"train": [{"type": "parquet", "features": ["user", "liked"], "files": files}]},
        "channel_spec": {"user_ch": ["user"], "item_ch": ["liked"]},
    }
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_pairs_counts_are_train_rows_per_item(tmp_path):
    folder = write_byo_dataset(tmp_path / "byo")
    spec = FeatureSpec.from_yaml(folder)
    assert not spec.is_lists
    rows = pd.concat([pd.read_csv(folder / f"train_ids_{i}.csv") for i in range(2)])  # ids over two csv files
    expected = np.zeros(spec.item_cardinality, np.int64)
    for item, n in Counter(rows["product"]).items():
        expected[item] = n
    assert checked_item_counts(spec).tolist() == expected.tolist()


def test_lists_counts_are_training_users_per_item(tmp_path):
    spec = FeatureSpec.from_yaml(_lists_folder(tmp_path / "lists"))
    assert spec.is_lists
    seen = Counter(item for part in LISTS for _, items in part for item in items)
    assert checked_item_counts(spec).tolist() == [seen[i] for i in range(ITEMS)]


def test_an_id_outside_its_table_is_refused_in_both_layouts(tmp_path):
    byo = write_byo_dataset(tmp_path / "byo")
    top = int(pd.concat([pd.read_csv(byo / f"train_ids_{i}.csv") for i in range(2)])["product"].max())
    with pytest.raises(UserError, match=rf"product ids span \[\d+, {top}\] but feature_spec.product.cardinality is {top}"):
        checked_item_counts(_byo_with_cardinality(tmp_path / "items", "product", top))
    with pytest.raises(UserError, match=r"customer ids span \[\d+, 59\] but feature_spec.customer.cardinality is 59"):
        checked_item_counts(_byo_with_cardinality(tmp_path / "users", "customer", 59))
    folder = _lists_folder(tmp_path / "lists", rows=[LISTS[0], LISTS[1] + [(5, [2, ITEMS])]])
    with pytest.raises(UserError, match=rf"liked ids span \[2, {ITEMS}\] but feature_spec.liked.cardinality is {ITEMS}"):
        checked_item_counts(FeatureSpec.from_yaml(folder))

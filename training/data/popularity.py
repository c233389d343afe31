"""Item popularity over the train positives, for both layouts, reading each file once."""
from __future__ import annotations

import numpy as np

from contract.chunks import read_chunk_file, read_parquet_lists
from contract.feature_spec import FeatureSpec


def checked_item_counts(spec: FeatureSpec) -> np.ndarray:
    """How many train positives each item index has: train rows per item (pairs), training users per item
    (lists). Raises UserError if an id is out of range: user and item ids (pairs), item ids (lists, whose
    user ids index no table in training).

    The ids are checked here because this is the one pass that reads every train file whole;
    the streaming loader never looks at the values.
    """
    counts = np.zeros(spec.item_cardinality, dtype=np.int64)
    for chunk in spec.chunks("train"):
        if spec.is_lists:
            for path in chunk["files"] if spec.item_feature in chunk["features"] else []:
                _, values = read_parquet_lists(path, [spec.item_feature])[spec.item_feature]
                spec.check_feature_ids(values, spec.item_feature, "train")
                counts += np.bincount(values, minlength=spec.item_cardinality)
            continue
        wanted = [f for f in (spec.user_feature, spec.item_feature) if f in chunk["features"]]
        for path in chunk["files"] if wanted else []:
            frame = read_chunk_file(chunk, path, wanted)
            spec.check_ids(frame, "train")
            if spec.item_feature in frame:
                counts += np.bincount(frame[spec.item_feature].to_numpy(), minlength=spec.item_cardinality)
    return counts

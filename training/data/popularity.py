"""Item popularity over the train positives, reading each file once."""
from __future__ import annotations

import numpy as np

from contract.chunks import read_chunk_file
from contract.feature_spec import FeatureSpec


def checked_item_counts(spec: FeatureSpec) -> np.ndarray:
    """How often each item index appears in train; raises UserError if an id is out of range.

    The ids are checked here because this is the one pass that reads every train file whole;
    the streaming loader never looks at the values.
    """
    counts = np.zeros(spec.item_cardinality, dtype=np.int64)
    for chunk in spec.chunks("train"):
        wanted = [f for f in (spec.user_feature, spec.item_feature) if f in chunk["features"]]
        for path in chunk["files"] if wanted else []:
            frame = read_chunk_file(chunk, path, wanted)
            spec.check_ids(frame, "train")
            if spec.item_feature in frame:
                counts += np.bincount(frame[spec.item_feature].to_numpy(), minlength=spec.item_cardinality)
    return counts

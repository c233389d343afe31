"""The pairs layout's graph (`etl prepare`, `--split time`): Categorify user and item ids, label each interaction.

The positive rule lives inside the graph (the label op), so `prepare` and `transform`, which both
apply the saved workflow, can never disagree about it. Every interaction is kept and encoded: those
below the rule (label 0) are not trained on but are still "known" to the user, so they are never
recommended back nor drawn as test negatives. Only named, importable callables go into the graph
(no lambdas), so the saved workflow loads on NVTabular releases that refuse to pickle lambdas.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ID_COLUMNS = ["user_id", "item_id"]
LABEL = "label"


class RatingAtLeast:
    """The positive rule as a label: 1.0 where rating >= min_rating (everywhere when it is None)."""

    def __init__(self, min_rating: float | None):
        self.min_rating = min_rating

    def __call__(self, rating):
        if self.min_rating is None:
            return (rating * 0 + 1).astype(np.float32)  # on pandas and cuDF alike
        return (rating >= self.min_rating).astype(np.float32)


def build_workflow(vocab_dir: Path, min_rating: float | None, vocabs: dict | None = None):
    """The unfitted workflow: encoded ids, the label, and timestamp and rating passed through.

    `vocabs` ({column: pandas Series of raw ids}) pins each id column's vocabulary in that order from
    index 3 instead of fitting it (NVTabular 23.08): a saved order with new ids appended keeps every
    old index (`etl prepare --grow`).
    """
    import nvtabular as nvt
    from nvtabular import ops

    # out_path keeps vocabularies out of the current directory, where two workflows
    # would overwrite each other's files (Categorify's default is "./").
    ids = ID_COLUMNS >> ops.Categorify(out_path=str(vocab_dir), dtype=np.int64, vocabs=vocabs)
    label = ["rating"] >> ops.LambdaOp(RatingAtLeast(min_rating), dtype=np.float32) >> ops.Rename(name=LABEL)
    return nvt.Workflow(ids + label + ["timestamp", "rating"])

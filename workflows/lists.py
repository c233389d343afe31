"""The lists layout's graph (`etl prepare --split users`, VAE-CF): the pairs graph, then each user's items as a list.

Groupby never moves rows between partitions: `etl` shuffles the data by user before applying it.
"""
from __future__ import annotations

from pathlib import Path

from nvtabular import ops

from .pairs import ID_COLUMNS, LABEL, build_workflow

USER, ITEM = ID_COLUMNS
ITEM_LIST, LABEL_LIST = f"{ITEM}_list", f"{LABEL}_list"  # what the Groupby names its list aggregations


class EncodedKeyGroupby(ops.Groupby):
    """NVTabular's Groupby, keeping the Categorified user id as its key.

    The stock operator declares its key columns as dependencies, so the key is taken from the
    workflow's input (the raw id) instead of from Categorify's output.
    """

    @property
    def dependencies(self):
        return []


def build_lists_workflow(vocab_dir: Path, min_rating: float | None, vocabs: dict | None = None):
    """Categorify and the positive rule (the pairs graph, `vocabs` as there), then items and labels per user
    in time order."""
    import nvtabular as nvt

    encoded = build_workflow(vocab_dir, min_rating, vocabs).output_node
    # (timestamp, item) makes the order within a user deterministic when timestamps tie or are absent.
    grouped = encoded >> EncodedKeyGroupby(groupby_cols=[USER], sort_cols=["timestamp", ITEM],
                                           aggs={ITEM: "list", LABEL: "list"})
    return nvt.Workflow(grouped)

"""The NVTabular Workflow: encode raw ids with Categorify and derive the implicit label.

Only named, importable callables go into the graph, so `Workflow.save` pickles them
by reference and the saved workflow loads on NVTabular releases that refuse lambdas.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ID_COLUMNS = ["user_id", "item_id"]
LABEL = "label"
# NVTabular 23.08 Categorify: 0 = padding, 1 = null, 2 = out-of-vocabulary, real ids from 3.
OOV_INDEX = 2
FIRST_ID = 3


class RatingAtLeast:
    """Implicit label: 1.0 where rating >= min_rating (every rating when min_rating is None)."""

    def __init__(self, min_rating: float | None):
        self.min_rating = min_rating

    def __call__(self, rating):
        if self.min_rating is None:
            return (rating * 0 + 1).astype(np.float32)
        return (rating >= self.min_rating).astype(np.float32)


def build_workflow(vocab_dir: Path, min_rating: float | None):
    import nvtabular as nvt
    from nvtabular import ops

    # out_path keeps vocabularies out of the current directory, where two workflows
    # would overwrite each other's files (Categorify's default is "./").
    ids = ID_COLUMNS >> ops.Categorify(out_path=str(vocab_dir), dtype=np.int64)
    label = ["rating"] >> ops.LambdaOp(RatingAtLeast(min_rating), dtype=np.float32) >> ops.Rename(name=LABEL)
    return nvt.Workflow(ids + label + ["timestamp", "rating"])


def cardinalities(workflow) -> dict[str, int]:
    """Embedding table sizes: unique values + the reserved indices."""
    from nvtabular.ops import get_embedding_sizes

    return {name: int(size[0]) for name, size in get_embedding_sizes(workflow).items()}


def vocabulary(workflow_dir: Path, column: str):
    """Raw values of a saved workflow's column as a Series indexed by encoded id (from FIRST_ID)."""
    import pandas as pd

    path = Path(workflow_dir) / "categories" / f"unique.{column}.parquet"
    return pd.read_parquet(path)[column]


def describe(workflow) -> str:
    """The workflow graph as indented text: each operator with the columns it outputs."""
    lines = []

    def walk(node, depth):
        name = type(node.op).__name__ if node.op is not None else "input"
        columns = ", ".join(node.output_schema.column_names) if node.output_schema is not None else ""
        lines.append(f"{'    ' * depth}{name} -> [{columns}]")
        for parent in node.parents_with_dependencies:
            walk(parent, depth + 1)

    walk(workflow.output_node, 0)
    return "\n".join(lines)

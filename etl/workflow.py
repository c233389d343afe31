"""Fitted NVTabular workflows: load, size, fingerprint and describe them (the graphs are in workflows/).

Loading a workflow runs pickled code: only load folders you trust.
"""
from __future__ import annotations

from pathlib import Path

from contract.errors import UserError
from contract.vocabulary import read_vocabulary, vocabulary_fingerprint
from workflows.pairs import (
    ID_COLUMNS,
    LABEL,
    RatingAtLeast,  # also: workflows saved before it moved pickled it from here
)

ENCODED_COLUMNS = [*ID_COLUMNS, LABEL, "timestamp", "rating"]
# NVTabular 23.08 Categorify: 0 = padding, 1 = null, 2 = out-of-vocabulary, real ids from 3.
# Downstream never imports these: the ETL writes them into the FeatureSpec's metadata.
OOV_INDEX = 2
FIRST_ID = 3


def fitted_cardinalities(workflow) -> dict[str, int]:
    """Embedding table sizes of the fitted id columns: unique values + the reserved indices."""
    from nvtabular.ops import get_embedding_sizes

    sizes = get_embedding_sizes(workflow)
    if isinstance(sizes, tuple):  # (single, multi-hot): per-user item lists
        raise UserError("this workflow outputs per-user lists: it was fitted by `etl prepare --split users` and only "
                        "encodes data for that split")
    return {name: int(size[0]) for name, size in sizes.items()}


def vocabulary_files() -> dict[str, str]:
    """Where a saved workflow keeps each id column's vocabulary, relative to its folder."""
    return {column: f"categories/unique.{column}.parquet" for column in ID_COLUMNS}


def fingerprint(workflow_dir: Path) -> str:
    return vocabulary_fingerprint(Path(workflow_dir) / f for f in vocabulary_files().values())


def load_workflow(workflow_dir):
    """Load a saved NVTabular workflow. It is pickled code: only load folders you trust."""
    import nvtabular as nvt

    workflow_dir = Path(workflow_dir)
    if not (workflow_dir / "workflow.pkl").is_file() or not (workflow_dir / "metadata.json").is_file():
        raise UserError(f"{workflow_dir} is not a saved workflow (no workflow.pkl/metadata.json); "
                        "point --workflow at the folder that `etl prepare` wrote")
    try:
        workflow = nvt.Workflow.load(str(workflow_dir))
    except Exception as exc:  # unpickling can fail in many ways; all mean "not usable"
        raise UserError(f"cannot load the workflow in {workflow_dir}: {type(exc).__name__}: {exc}")
    # Categorify reads its vocabularies only when applied, deep in a Dask task: check them now.
    for vocabulary in sorted((workflow_dir / "categories").glob("unique.*.parquet")):
        read_vocabulary(vocabulary, vocabulary.name.removeprefix("unique.").removesuffix(".parquet"))
    return workflow


def _walk(node, depth=0):
    """(node, depth) of every node of a workflow graph, outputs first."""
    yield node, depth
    for parent in node.parents_with_dependencies:
        yield from _walk(parent, depth + 1)


def positive_rule(workflow) -> float | None:
    """The --min-rating a workflow's label op applies (None: every rating is a positive)."""
    for node, _ in _walk(workflow.output_node):
        rule = getattr(node.op, "f", None)
        if isinstance(rule, RatingAtLeast):
            return rule.min_rating
    return None


def describe(workflow) -> str:
    """The workflow graph as indented text: each operator with the columns it outputs."""
    lines = []
    for node, depth in _walk(workflow.output_node):
        name = type(node.op).__name__ if node.op is not None else "input"
        columns = ", ".join(node.output_schema.column_names) if node.output_schema is not None else ""
        lines.append(f"{'    ' * depth}{name} -> [{columns}]")
    return "\n".join(lines)

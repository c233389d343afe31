"""The FeatureSpec of data the ETL wrote, with what downstream must know about the encoding."""
from __future__ import annotations

import os
from pathlib import Path

from contract.feature_spec import FeatureSpec

from .workflow import FIRST_ID, LABEL, OOV_INDEX, fingerprint, vocabulary_files

FEATURES = ["user_id", "item_id", LABEL]


def encoding_metadata(workflow_dir: Path, output: Path, saved_at: Path | None = None) -> dict:
    """Reserved indices, where the vocabularies are, and which fitted workflow this is.

    `workflow_dir` and `output` are the final locations (the path between them is recorded);
    `saved_at` is where the workflow's files are now, if not yet renamed into place.
    """
    return {
        "first_index": FIRST_ID,
        "reserved_indices": {"padding": 0, "null": 1, "out_of_vocabulary": OOV_INDEX},
        "workflow": os.path.relpath(Path(workflow_dir).resolve(), Path(output).resolve()),
        "workflow_id": fingerprint(saved_at or workflow_dir),
        "vocabularies": vocabulary_files(),
    }


def encoded_spec(directory: Path, cardinalities: dict, folders: dict, encoding: dict,
                 samples_per_series: int | None = None) -> FeatureSpec:
    """user_id/item_id/label parquet, one chunk per mapping; `folders` maps mappings to sub-folders."""
    metadata = {"test_samples_per_series": samples_per_series} if samples_per_series else {}
    return FeatureSpec(
        feature_spec={
            "user_id": {"dtype": "torch.int64", "cardinality": cardinalities["user_id"]},
            "item_id": {"dtype": "torch.int64", "cardinality": cardinalities["item_id"]},
            LABEL: {"dtype": "torch.float32"},
        },
        source_spec={
            mapping: [{"type": "parquet", "features": FEATURES,
                       "files": sorted(f"{folder}/{p.name}" for p in (Path(directory) / folder).glob("*.parquet"))}]
            for mapping, folder in folders.items()
        },
        channel_spec={"user_ch": ["user_id"], "item_ch": ["item_id"], "label_ch": [LABEL]},
        metadata={**metadata, "encoding": encoding},
        base_directory=Path(directory),
    )

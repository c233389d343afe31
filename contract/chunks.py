"""Reading one file of a FeatureSpec chunk (parquet, or CSV with or without a header)."""
from __future__ import annotations

import pandas as pd

from .errors import UserError


def read_chunk_file(chunk: dict, path: str, columns) -> pd.DataFrame:
    """Read one file of a chunk. CSV files may or may not carry a header row."""
    features = chunk["features"]
    try:
        if chunk["type"] == "parquet":
            frame = pd.read_parquet(path, columns=list(columns))
        else:
            header = 0 if csv_has_header(chunk, path) else None
            frame = pd.read_csv(path, header=header, names=features, usecols=list(columns))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    for name in columns:
        if name in frame and frame[name].isna().any():
            raise UserError(f"{path}: column '{name}' has empty or unparsable values")
    return frame


def csv_has_header(chunk: dict, path: str) -> bool:
    with open(path) as handle:
        return handle.readline().strip().split(",") == list(chunk["features"])

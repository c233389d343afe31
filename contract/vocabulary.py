"""The raw values behind encoded ids, as a saved workflow stores them, and a fingerprint of them.

A vocabulary file is a parquet table with one column named after the feature, indexed by the
encoded id. The fingerprint lets a consumer check that a workflow folder and a prepared
dataset belong together (the ETL writes it into the FeatureSpec's metadata).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from .errors import UserError


def read_vocabulary(path: Path, feature: str) -> pd.Series:
    """Raw values of `feature`, indexed by encoded id."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"vocabulary {path} does not exist: is that the workflow folder of this data?")
    return pd.read_parquet(path)[feature]


def vocabulary_fingerprint(paths) -> str:
    """A short content hash of vocabulary files (order given by the caller)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]

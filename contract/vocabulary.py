"""The raw values behind encoded ids, as a saved workflow stores them, and a fingerprint of them.

A vocabulary file is a parquet table with one column named after the feature, indexed by the
encoded id. The fingerprint lets a consumer check that a workflow folder and a prepared
dataset belong together (the ETL writes it into the FeatureSpec's metadata).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError, root_cause


def read_vocabulary(path: Path, feature: str) -> pd.Series:
    """Raw values of `feature`, indexed by encoded id."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"vocabulary {path} does not exist: is that the workflow folder of this data?")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for truncated or foreign bytes
        raise UserError(f"vocabulary {path} is damaged or not parquet ({root_cause(exc)}): prepare the data again")
    if feature not in table:
        raise UserError(f"vocabulary {path} has no column {feature!r}: is that the workflow folder of this data?")
    return table[feature]


def vocabulary_fingerprint(paths) -> str:
    """A short content hash of vocabulary files (order given by the caller)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


class VocabularyIndex:
    """Raw id -> encoded id through one vocabulary, as Categorify maps them; the lookup table is built once.

    Raw ids arrive as text (a command line; str or UTF-8 bytes in a request). When the vocabulary's
    ids are integers, the text is read as an integer first, so "7" finds 7.
    """

    def __init__(self, vocab: pd.Series):
        self.integer = bool(np.issubdtype(vocab.dtype, np.integer))
        self._index = pd.Index(vocab.to_numpy())
        self._codes = vocab.index.to_numpy(np.int64)

    def encode(self, raw_ids, missing: int, strict: bool = True) -> np.ndarray:
        """The encoded id of each raw id, `missing` where the vocabulary has none.

        With integer ids, text that is not an integer raises ValueError when `strict`, else it is missing.
        """
        values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in raw_ids]
        if self.integer:
            values = [_as_int(v, strict) for v in values]
        found = [i for i, v in enumerate(values) if v is not None]
        positions = np.full(len(values), -1, dtype=np.int64)
        if found:
            positions[found] = self._index.get_indexer([values[i] for i in found])
        return np.where(positions >= 0, self._codes[positions], missing)


def _as_int(text, strict: bool):
    try:
        return int(text)
    except ValueError:
        if strict:
            raise
        return None

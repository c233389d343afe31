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


def read_parquet_lists(path: str, columns) -> dict:
    """Columns of one parquet file of the lists layout, without a pandas round trip.

    A list column comes back as (offsets, values): row i holds values[offsets[i]:offsets[i + 1]];
    any other column as a numpy array.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(columns))
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    out = {}
    for name in columns:
        column = table.column(name)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
            if array.null_count:
                raise UserError(f"{path}: list column '{name}' has empty (null) rows")
            offsets = array.offsets.to_numpy().astype(np.int64)
            values = array.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
            out[name] = (offsets - offsets[0], values.astype(np.int64, copy=False))
        else:
            if column.null_count:
                raise UserError(f"{path}: column '{name}' has empty or unparsable values")
            out[name] = column.to_numpy()
    return out


def list_column(offsets, values):
    """A parquet list column from (offsets, values), row i holding values[offsets[i]:offsets[i + 1]]: what
    `read_parquet_lists` reads back. int32 offsets (pyarrow's list type), int64 ids."""
    import numpy as np
    import pyarrow as pa

    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, dtype=np.int32)),
                                    pa.array(np.asarray(values, dtype=np.int64)))

"""Raw interaction readers: MovieLens files/zips/folders and any CSV or parquet.

Every reader returns a Dask DataFrame with the columns of RAW_COLUMNS: raw user and
item ids, an int64 timestamp and a float32 rating (1.0 when the source has none).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import dask.dataframe as dd
import pandas as pd

from contract.errors import UserError

RAW_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]
FORMATS = ("auto", "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "csv", "parquet")
# The file that holds the ratings in each MovieLens release, and the format it implies.
RATINGS_FILES = {"u.data": "ml-100k", "ratings.dat": "ml-1m", "ratings.csv": "ml-20m"}
BLOCKSIZE = "32MB"  # ~1M rows per partition: both cores busy, bounded memory


@dataclass(frozen=True)
class ColumnNames:
    """Column names of a generic CSV/parquet source (defaults: MovieLens' ratings.csv)."""

    user: str = "userId"
    item: str = "movieId"
    timestamp: str = "timestamp"
    rating: str | None = "rating"


def resolve_input(path, fmt: str, workdir: Path) -> tuple[Path, str]:
    """Find the ratings file behind `path` (file, folder or zip) and its format."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise UserError(f"input {path} does not exist")
    if path.is_dir():
        found = _find_ratings_file(path)
        if found is None:
            raise UserError(f"no ratings file ({', '.join(RATINGS_FILES)}) found in folder {path}")
        path = found
    elif path.suffix == ".zip" or (fmt == "auto" and zipfile.is_zipfile(path)):
        path = _extract_ratings(path, workdir)
    if path.stat().st_size == 0:
        raise UserError(f"input {path} is empty")
    if fmt == "auto":
        fmt = _format_from_name(path)
    return path, fmt


def _find_ratings_file(folder: Path) -> Path | None:
    for pattern in ("*", "*/*"):
        for candidate in sorted(folder.glob(pattern)):
            if candidate.name in RATINGS_FILES and candidate.is_file():
                return candidate
    return None


def _extract_ratings(archive: Path, workdir: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if Path(m).name in RATINGS_FILES]
            if not members:
                raise UserError(f"zip {archive} holds no ratings file ({', '.join(RATINGS_FILES)})")
            member = sorted(members, key=len)[0]
            target = workdir / "raw" / Path(member).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                while block := src.read(1 << 24):
                    dst.write(block)
            return target
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise UserError(f"zip {archive} is corrupt or unreadable: {exc}")


def _format_from_name(path: Path) -> str:
    if path.name in RATINGS_FILES:
        return RATINGS_FILES[path.name]
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix in (".csv", ".txt"):
        return "csv"
    if path.suffix == ".dat":
        return "ml-1m"
    raise UserError(f"cannot tell the format of {path}; pass --format ({', '.join(FORMATS[1:])})")


def read_ratings(path: Path, fmt: str, columns: ColumnNames = ColumnNames(), typed: bool = True) -> dd.DataFrame:
    """Lazily read a resolved ratings file into the RAW_COLUMNS schema.

    typed=True parses numbers in the CSV parser (fast); a value that does not parse fails
    with pandas' terse message, and `diagnose` re-reads as text to name the bad column.
    """
    layout = _LAYOUTS.get(fmt)
    if layout:
        sep, names = layout
        dtype = {n: ("float64" if n == "rating" else "int64") if typed else str for n in RAW_COLUMNS}
        ddf = dd.read_csv(str(path), sep=sep, header=None, names=names, blocksize=BLOCKSIZE,
                          dtype={n: dtype.get(n, str) for n in names}, on_bad_lines="error")[
            ["user_id", "item_id", "rating", "timestamp"]]
        numeric_ids = True
    elif fmt == "parquet":
        ddf = _read_named(path, "parquet", columns, typed)
        numeric_ids = all(pd.api.types.is_integer_dtype(ddf[c].dtype) for c in ("user_id", "item_id"))
    else:
        named = ColumnNames() if fmt != "csv" else columns
        ddf = _read_named(path, "csv", named, typed)
        numeric_ids = fmt != "csv" or _csv_ids_look_numeric(path, named)
    meta = pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64" if numeric_ids else object),
            "item_id": pd.Series(dtype="int64" if numeric_ids else object),
            "timestamp": pd.Series(dtype="int64"),
            "rating": pd.Series(dtype="float32"),
        }
    )
    return ddf.map_partitions(normalise_partition, numeric_ids, meta=meta)


def diagnose(path: Path, fmt: str, columns: ColumnNames = ColumnNames()) -> None:
    """Re-read as text, one partition at a time, and raise the UserError naming the bad value."""
    for part in read_ratings(path, fmt, columns, typed=False).to_delayed():
        part.compute(scheduler="synchronous")


# MovieLens layouts without a header: separator and column names. '::' would need pandas'
# slow python engine; splitting on ':' leaves empty columns between fields and keeps the C parser.
_LAYOUTS = {
    "ml-100k": ("\t", ["user_id", "item_id", "rating", "timestamp"]),
    "ml-1m": (":", ["user_id", "_a", "item_id", "_b", "rating", "_c", "timestamp"]),
    "ml-10m": (":", ["user_id", "_a", "item_id", "_b", "rating", "_c", "timestamp"]),
}


def _csv_ids_look_numeric(path: Path, columns: ColumnNames) -> bool:
    """Integer ids stay integers; anything else (hashes, names) is kept as strings."""
    head = pd.read_csv(path, nrows=1000, dtype=str, usecols=[columns.user, columns.item])
    return all(pd.to_numeric(head[c], errors="coerce").notna().all() for c in head)


def _read_named(path: Path, kind: str, columns: ColumnNames, typed: bool) -> dd.DataFrame:
    wanted = {"user_id": columns.user, "item_id": columns.item, "timestamp": columns.timestamp}
    if columns.rating:
        wanted["rating"] = columns.rating
    if kind == "csv":
        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{path} is not a readable CSV file: {str(exc).splitlines()[0]}")
    else:
        import pyarrow.parquet as pq

        try:
            header = pq.ParquetFile(path).schema_arrow.names
        except Exception as exc:  # pyarrow raises several types for non-parquet bytes
            raise UserError(f"{path} is not a readable parquet file: {str(exc).splitlines()[0]}")
    optional = {"rating"} if columns == ColumnNames() or kind == "parquet" else set()
    for role, name in list(wanted.items()):
        if name not in header:
            if role in optional:
                del wanted[role]
                continue
            raise UserError(
                f"{path} has no {role.replace('_id', '')} column '{name}' (columns: {', '.join(map(str, header))}); "
                f"name it with --{role.replace('_id', '')}-col"
            )
    if kind == "csv":
        dtype = str
        if typed:  # numbers where the first rows are numbers; a later odd value sends us to diagnose()
            sample = pd.read_csv(path, nrows=1000, dtype=str, usecols=list(wanted.values()))
            dtype = {name: ("float64" if role == "rating" else "int64")
                     if pd.to_numeric(sample[name], errors="coerce").notna().all() else str
                     for role, name in wanted.items()}
        ddf = dd.read_csv(str(path), usecols=list(wanted.values()), blocksize=BLOCKSIZE, dtype=dtype)
    else:
        # one partition per row group: a single large file must not become a single partition
        ddf = dd.read_parquet(str(path), columns=list(wanted.values()), split_row_groups=True)
    ddf = ddf.rename(columns={v: k for k, v in wanted.items()})
    if "rating" not in wanted:
        ddf["rating"] = 1.0
    return ddf[RAW_COLUMNS]


def normalise_partition(df: pd.DataFrame, numeric_ids: bool) -> pd.DataFrame:
    """Types and sanity of one partition; raises UserError naming the bad column."""
    out = pd.DataFrame(index=df.index)
    for column in ("user_id", "item_id"):
        values = df[column]
        if values.isna().any():
            raise UserError(f"{column.replace('_id', '')} id column has empty values (or rows have too few fields)")
        if numeric_ids:
            out[column] = _to_int(values, f"{column.replace('_id', '')} id")
        else:
            out[column] = values.astype(str)
    out["timestamp"] = _to_timestamp(df["timestamp"])
    rating = pd.to_numeric(df["rating"], errors="coerce")
    if rating.isna().any():
        bad = df["rating"][rating.isna()].iloc[0]
        raise UserError(f"rating column: cannot parse {bad!r} as a number")
    out["rating"] = rating.astype("float32")
    return out


def _to_int(values: pd.Series, what: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        raise UserError(f"{what} column: cannot parse {values[numbers.isna()].iloc[0]!r} as an integer id")
    if (numbers % 1 != 0).any():
        raise UserError(f"{what} column: {numbers[numbers % 1 != 0].iloc[0]!r} is not an integer id")
    return numbers.astype("int64")


def _to_timestamp(values: pd.Series) -> pd.Series:
    """Unix seconds from numbers or date strings."""
    if values.isna().any():
        raise UserError("timestamp column has empty values (or rows have too few fields)")
    numbers = pd.to_numeric(values, errors="coerce")
    if not numbers.isna().any():
        return numbers.astype("int64")
    try:
        dates = pd.to_datetime(values, errors="raise", utc=True)
    except (ValueError, TypeError, OverflowError):
        bad = values[numbers.isna()].iloc[0]
        raise UserError(f"timestamp column: cannot parse {bad!r} as a number or a date")
    return (dates.astype("int64") // 1_000_000_000).astype("int64")


def stage_ratings(path: Path, fmt: str, columns: ColumnNames, target: Path, client=None, quiet: bool = False) -> int:
    """Parse the raw file once into typed parquet under `target`; returns the row count.

    Later passes (fit, transform) read this parquet instead of re-parsing text. A parse
    failure is re-diagnosed as text so the error names the column and the value.
    """
    import pyarrow.parquet as pq

    from .progress import compute_with_progress

    try:  # dask parses a sample while building the graph, so reading can fail here too
        raw = read_ratings(path, fmt, columns)
        compute_with_progress(raw.to_parquet(str(target), write_index=False, compute=False,
                                             name_function=staged_name), client=client, quiet=quiet)
    except UserError:
        raise
    except (ValueError, TypeError):
        diagnose(path, fmt, columns)
        raise
    return sum(pq.ParquetFile(f).metadata.num_rows for f in staged_files(target))


def staged_name(index: int) -> str:
    return f"part_{index:05d}.parquet"  # zero-padded: file order is row order


def staged_files(target: Path) -> list[str]:
    return sorted(str(f) for f in Path(target).glob("part_*.parquet"))

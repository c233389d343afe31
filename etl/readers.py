"""Raw interaction readers: MovieLens files/zips/folders, any CSV/TSV (gzipped or not) or parquet,
folders of such part files, and the per-user `lines` format of the public full-ranking benchmarks.

Every reader returns a Dask DataFrame with the columns of RAW_COLUMNS: raw user and
item ids, an int64 timestamp and a float32 rating (1.0 when the source has none).

`lines` (LightGCN/NGCF/SimpleX/UltraGCN's train.txt and test.txt): one line per user, `user item item ...`,
whitespace-separated, no header; a line with a user and no items adds nothing. Ids are integers when the
first lines' are (a later token that is not one is refused, naming its file and line), else strings.
`--format auto` takes a .txt/.csv/.tsv file (or one without a suffix) for `lines` only where it cannot be a
ratings file: no header, every token of its first lines an integer, and lines of different lengths or
longer than a ratings row (user item rating timestamp); a headerless 2-4 column file stays ambiguous.
"""
from __future__ import annotations

import csv
import gzip
import re
import zipfile
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.io.csv import read_pandas

from contract.errors import UserError

RAW_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]
FORMATS = ("auto", "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "csv", "parquet", "lines")
# The file that holds the ratings in each MovieLens release (also gzipped), and the format it implies.
RATINGS_FILES = {"u.data": "ml-100k", "ratings.dat": "ml-1m", "ratings.csv": "ml-20m"}
# Files a folder of parts may hold; one kind per folder.
PART_KINDS = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")
SEPARATORS = (",", "\t", ";", "|")  # detected from the header line, first wins a tie
BLOCKSIZE = "32MB"  # ~1M rows per partition: both cores busy, bounded memory
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SAMPLE_LINES = 1000  # lines looked at to detect the lines format and whether its ids are integers
RATINGS_ROW = 4  # user item rating timestamp: the most fields a headerless ratings row has
LINE_SEPARATORS = (",", ";", "|")  # a `lines` token holding one is a field of a CSV row, not an id
_INTEGER = re.compile(r"[+-]?\d+")


class EmptyValues(UserError):
    """A column has empty values: perhaps a row with too few fields, which `ragged_line` can name."""


@dataclass(frozen=True)
class ColumnNames:
    """How to read a generic CSV/parquet source: its column names (defaults: MovieLens' ratings.csv)
    and, for a CSV, its separator (None: detected from the header line)."""

    user: str = "userId"
    item: str = "movieId"
    timestamp: str = "timestamp"
    rating: str | None = "rating"
    sep: str | None = None
    timestamp_optional: bool = False  # --split users: without the column every row gets timestamp 0


def resolve_input(path, fmt: str, workdir: Path) -> tuple[Path, str]:
    """Find the ratings behind `path` and their format: a file, or a folder of part files read as one."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise UserError(f"input {path} does not exist")
    if path.is_dir():
        path = _find_ratings_file(path) or path
    elif path.suffix == ".zip" or (fmt == "auto" and zipfile.is_zipfile(path)):
        path = _extract_ratings(path, workdir)
    files = _input_files(path)
    if not files:
        raise UserError(f"no ratings file ({', '.join(RATINGS_FILES)}, optionally .gz) nor part files "
                        f"({', '.join(PART_KINDS)}) found in folder {path}")
    for file in files:
        if file.stat().st_size == 0:
            raise UserError(f"input {file} is empty")
    if fmt == "auto":
        fmt = _format_from_name(files[0])
    return path, fmt


def _plain_name(path: Path) -> str:
    return path.name.removesuffix(".gz")  # compression does not change what a file holds


def _find_ratings_file(folder: Path) -> Path | None:
    for pattern in ("*", "*/*"):
        for candidate in sorted(folder.glob(pattern)):
            if _plain_name(candidate) in RATINGS_FILES and candidate.is_file():
                return candidate
    return None


def _input_files(path: Path) -> list[Path]:
    """The file itself, or a folder's part files sorted by name (file order is row order)."""
    if not path.is_dir():
        return [path]
    kinds: dict[str, list[Path]] = {}
    for file in sorted(path.iterdir()):
        kind = next((k for k in PART_KINDS if file.name.endswith(k)), None)
        # '.'/'_' names are bookkeeping (_SUCCESS, .crc, editor files), not data
        if kind and file.is_file() and not file.name.startswith((".", "_")):
            kinds.setdefault(kind, []).append(file)
    if len(kinds) > 1:
        found = "; ".join(f"{len(files)} {kind} (e.g. {files[0].name})" for kind, files in kinds.items())
        raise UserError(f"folder {path} mixes part files of different kinds ({found}); keep one kind")
    return next(iter(kinds.values()), [])


def _extract_ratings(archive: Path, workdir: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if _plain_name(Path(m)) in RATINGS_FILES]
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
    plain = Path(_plain_name(path))
    known = RATINGS_FILES.get(plain.name) or ("ml-1m" if plain.suffix == ".dat" else None)
    if known in _LAYOUTS:  # MovieLens' own files have no header; a same-named file with one is a CSV
        return known if _first_field_is_a_number(path) else "csv"
    if known:
        return known
    if plain.suffix == ".parquet":
        return "parquet"
    if plain.suffix in (".csv", ".tsv", ".txt", "") and _looks_like_lines(path):
        return "lines"
    if plain.suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    raise UserError(f"cannot tell the format of {path}; pass --format ({', '.join(FORMATS[1:])})")


def read_ratings(path: Path, fmt: str, columns: ColumnNames = ColumnNames(), typed: bool = True) -> dd.DataFrame:
    """Lazily read a resolved ratings file (or folder of part files) into the RAW_COLUMNS schema.

    typed=True parses numbers in the CSV parser (fast); a value that does not parse fails
    with pandas' terse message, and `diagnose` re-reads as text to name the bad column.
    """
    files = _input_files(Path(path))
    layout = _LAYOUTS.get(fmt)
    if layout:
        sep, names = layout
        dtype = {n: ("float64" if n == "rating" else "int64") if typed else str for n in RAW_COLUMNS}
        ddf = read_pandas(_parse_csv_block, [str(f) for f in files], sep=sep, header=None, names=names,
                          blocksize=_blocksize(files[0]), dtype={n: dtype.get(n, str) for n in names},
                          on_bad_lines="error")[["user_id", "item_id", "rating", "timestamp"]]
        numeric_ids = True
    elif fmt == "lines":
        numeric_ids = _lines_ids_look_numeric(files[0])
        ddf = _read_lines(files, numeric_ids and typed)
    elif fmt == "parquet":
        ddf = _read_named(files, "parquet", columns, typed)
        numeric_ids = all(pd.api.types.is_integer_dtype(ddf[c].dtype) for c in ("user_id", "item_id"))
    else:
        named = columns if fmt == "csv" else ColumnNames(timestamp_optional=columns.timestamp_optional)
        named = replace(named, sep=_separator(files[0], named.sep))
        ddf = _read_named(files, "csv", named, typed)
        numeric_ids = fmt != "csv" or _csv_ids_look_numeric(files[0], named)
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


def _parse_csv_block(*args, **kwargs) -> pd.DataFrame:
    """pd.read_csv for Dask that refuses integers past int64: asked for int64, pandas returns
    uint64 for them, which Dask would then silently wrap back to int64."""
    df = pd.read_csv(*args, **kwargs)
    for column in df.columns:
        if df[column].dtype.kind == "u":
            raise ValueError(f"column {column}: {df[column].max()} does not fit a signed 64-bit integer")
    return df


def _first_field_is_a_number(path: Path) -> bool:
    """A first line that starts with a number is data (MovieLens' .dat and u.data); anything else is a header."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        line = f.readline(1 << 16).lstrip("\ufeff")
    return bool(re.match(r"\s*-?\d+\s*(::|\t|,|;|\|)", line))


def _opener(path: Path):
    return gzip.open if path.name.endswith(".gz") else open


def _sample_lines(path: Path) -> list[list[str]]:
    """The tokens of the first SAMPLE_LINES non-blank lines."""
    sample = []
    with _opener(path)(path, "rt", encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if tokens := line.split():
                sample.append(tokens)
                if len(sample) == SAMPLE_LINES:
                    break
    return sample


def _looks_like_lines(path: Path) -> bool:
    """The per-user lines format where nothing else fits: no header, integer tokens only, and lines of
    different lengths or longer than a ratings row (a constant 2-4 integers could be ratings rows)."""
    sample = _sample_lines(path)
    if not sample or not all(_INTEGER.fullmatch(token) for tokens in sample for token in tokens):
        return False
    lengths = {len(tokens) for tokens in sample}
    return len(lengths) > 1 or lengths.pop() > RATINGS_ROW


def _lines_ids_look_numeric(path: Path) -> bool:
    """Integer ids where the first lines hold integers only; anything else keeps every id a string."""
    return all(_INTEGER.fullmatch(token) for tokens in _sample_lines(path) for token in tokens)


def _read_lines(files: list[Path], numeric: bool) -> dd.DataFrame:
    """`user item item ...` lines into one (user, item) row per item; blocks split at line ends."""
    from dask import delayed
    from dask.bytes import read_bytes

    _, blocks = read_bytes([str(f) for f in files], delimiter=b"\n", blocksize=_blocksize(files[0]), sample=False,
                           compression="infer")
    meta = _parse_lines_block(b"", numeric)
    parts = [delayed(_parse_lines_block)(block, numeric) for per_file in blocks for block in per_file]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _parse_lines_block(block: bytes, numeric: bool) -> pd.DataFrame:
    """One block of whole lines. A bad line raises ValueError; `refuse_bad_lines` then names it."""
    users, items = [], []
    for line in block.decode("utf-8-sig").split("\n"):
        user, *rest = line.split() or [None]
        if any(sep in line for sep in LINE_SEPARATORS):
            raise ValueError("a lines token holds a CSV separator")
        users.extend([user] * len(rest))
        items.extend(rest)
    dtype = np.int64 if numeric else object
    # str -> int64 parses exactly and raises on fractions, words and values past int64
    ids = {"user_id": np.array(users, dtype=str if numeric else object).astype(dtype),
           "item_id": np.array(items, dtype=str if numeric else object).astype(dtype)}
    return pd.DataFrame({**ids, "timestamp": np.zeros(len(items), np.int64), "rating": np.ones(len(items), np.float32)})


def refuse_bad_lines(files: list[Path]) -> None:
    """Raise the UserError naming the first line of the lines format that holds no ids (or a non-integer
    one where the first lines hold integers); the scan counts lines as the block reader splits them."""
    numeric = _lines_ids_look_numeric(files[0])
    for file in files:
        with _opener(file)(file, "rb") as f:
            for number, raw in enumerate(f, 1):
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace")
                sep = next((s for s in LINE_SEPARATORS if s in line), None)
                if sep is not None:
                    raise UserError(f"{file} line {number} holds {sep!r}: the lines format is `user item item ...` "
                                    "separated by whitespace (a CSV? pass --format csv)")
                for token in line.split() if numeric else ():
                    if not _INTEGER.fullmatch(token) or not INT64_MIN <= int(token) <= INT64_MAX:
                        raise UserError(f"{file} line {number}: {token!r} is not a 64-bit integer id like those of "
                                        "its first lines (the lines format: `user item item ...`)")


def _blocksize(path: Path) -> str | None:
    return None if path.name.endswith(".gz") else BLOCKSIZE  # a gzip stream cannot be split


def _separator(path: Path, sep: str | None) -> str:
    """--sep as given, else the one of SEPARATORS that the header line holds most of."""
    if sep is not None:
        if len(sep) != 1:  # longer ones need pandas' slow regex parser
            raise UserError(f"--sep must be one character (\\t for a tab), not {sep!r}")
        return sep
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        header = f.readline(1 << 16)
    return max(SEPARATORS, key=header.count)


def _csv_ids_look_numeric(path: Path, columns: ColumnNames) -> bool:
    """Ids that are exact int64 integers stay integers; anything else (hashes, names, ids past
    int64) is kept as strings, so it comes back exactly."""
    head = pd.read_csv(path, nrows=1000, dtype=str, usecols=[columns.user, columns.item], sep=columns.sep)
    try:
        for column in head:
            _to_int(head[column], column)
    except UserError:
        return False
    return True


def _header(path: Path, kind: str, sep: str | None) -> list[str]:
    if kind == "csv":
        try:
            return list(pd.read_csv(path, nrows=0, sep=sep).columns)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{path} is not a readable CSV file: {str(exc).splitlines()[0]}")
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # pyarrow raises several types for non-parquet bytes
        raise UserError(f"{path} is not a readable parquet file: {str(exc).splitlines()[0]}")


def _read_named(files: list[Path], kind: str, columns: ColumnNames, typed: bool) -> dd.DataFrame:
    first = files[0]
    wanted = {"user_id": columns.user, "item_id": columns.item, "timestamp": columns.timestamp}
    if columns.rating:
        wanted["rating"] = columns.rating
    header = _header(first, kind, columns.sep)
    # Dask reuses the first file's header for every block, so every part must share it.
    for part in files[1:]:
        if (other := _header(part, kind, columns.sep)) != header:
            raise UserError(f"part {part} has columns ({', '.join(map(str, other))}) unlike {first.name} "
                            f"({', '.join(map(str, header))}); every part needs the same columns")
    optional = {"rating"} if replace(columns, sep=None, timestamp_optional=False) == ColumnNames() or kind == "parquet" \
        else set()
    if columns.timestamp_optional:
        optional.add("timestamp")
    for role, name in list(wanted.items()):
        if name not in header:
            if role in optional:
                del wanted[role]
                continue
            what = role.replace("_id", "")
            read = f" (read with separator {columns.sep!r})" if kind == "csv" else ""
            headerless = kind == "csv" and all(_INTEGER.fullmatch(t) for h in header for t in str(h).split())
            raise UserError(f"{first} has no {what} column '{name}' (columns: {', '.join(map(str, header))}){read}; "
                            f"name it with --{what}-col" + (" or pass --sep" if kind == "csv" else "")
                            + ("; no header line: per-user `user item item ...` lines are --format lines"
                               if headerless else ""))
    paths = [str(f) for f in files]
    if kind == "csv":
        dtype = str
        if typed:  # numbers where the first rows are numbers; a later odd value sends us to diagnose()
            sample = pd.read_csv(first, nrows=1000, dtype=str, usecols=list(wanted.values()), sep=columns.sep)
            ids = _csv_ids_look_numeric(first, columns)  # as read_ratings decides: text ids stay exact
            dtype = {}
            for role, name in wanted.items():
                numeric = ids if role.endswith("_id") else pd.to_numeric(sample[name], errors="coerce").notna().all()
                dtype[name] = ("float64" if role == "rating" else "int64") if numeric else str
        # No usecols: with it pandas reads a row with an extra field shifted instead of refusing it.
        # The other columns stay text, so their types cannot differ between blocks.
        dtype = {name: str for name in header} | (dtype if isinstance(dtype, dict) else {})
        ddf = read_pandas(_parse_csv_block, paths, blocksize=_blocksize(first), dtype=dtype,
                          sep=columns.sep)[list(wanted.values())]
    else:
        # one partition per row group: a single large file must not become a single partition
        ddf = dd.read_parquet(paths, columns=list(wanted.values()), split_row_groups=True)
    ddf = ddf.rename(columns={v: k for k, v in wanted.items()})
    if "rating" not in wanted:
        ddf["rating"] = 1.0
    if "timestamp" not in wanted:
        ddf["timestamp"] = 0
    return ddf[RAW_COLUMNS]


def normalise_partition(df: pd.DataFrame, numeric_ids: bool) -> pd.DataFrame:
    """Types and sanity of one partition; raises UserError naming the bad column."""
    out = pd.DataFrame(index=df.index)
    for column in ("user_id", "item_id"):
        values = df[column]
        if values.isna().any():
            raise EmptyValues(f"{column.replace('_id', '')} id column has empty values (or rows have too few fields)")
        if numeric_ids:
            out[column] = _to_int(values, f"{column.replace('_id', '')} id")
        else:
            out[column] = values.astype(str)
    out["timestamp"] = _to_timestamp(df["timestamp"])
    rating = pd.to_numeric(df["rating"], errors="coerce")
    if not np.isfinite(rating).all():
        bad = df["rating"][~np.isfinite(rating)].iloc[0]
        raise UserError(f"rating column: cannot parse {bad!r} as a finite number")
    out["rating"] = rating.astype("float32")
    return out


def _to_int(values: pd.Series, what: str) -> pd.Series:
    """int64 ids, exactly: a value outside int64 raises rather than wraps."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        raise UserError(f"{what} column: cannot parse {values[numbers.isna()].iloc[0]!r} as an integer id")
    if numbers.dtype.kind == "i":
        return numbers.astype("int64")
    if numbers.dtype.kind == "u":  # exact; pandas only picks uint64 for values past int64's max
        exact, outside = numbers, numbers > np.uint64(INT64_MAX)
    else:  # float64 rounds ids past 2**53 (2**63 - 1 becomes 2**63): take them from the text
        exact = pd.Series([_exact_int(v) for v in values], index=values.index, dtype=object)
        if exact.isna().any():
            raise UserError(f"{what} column: {values[exact.isna()].iloc[0]!r} is not an integer id")
        outside = exact.map(lambda n: not INT64_MIN <= n <= INT64_MAX).astype(bool)
    if outside.any():
        raise UserError(f"{what} column: {values[outside].iloc[0]} does not fit a signed 64-bit integer; store "
                        "such ids as strings (a CSV keeps them as strings when its first 1000 rows hold one)")
    return exact.astype("int64")


def _exact_int(value) -> int | None:
    """The integer a number's text spells exactly; None for fractions and infinities."""
    number = Decimal(str(value).strip())
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def _to_timestamp(values: pd.Series) -> pd.Series:
    """Unix seconds from numbers or date strings."""
    if values.isna().any():
        raise EmptyValues("timestamp column has empty values (or rows have too few fields)")
    numbers = pd.to_numeric(values, errors="coerce")
    if not numbers.isna().any():
        if not np.isfinite(numbers).all():
            raise UserError(f"timestamp column: {values[~np.isfinite(numbers)].iloc[0]!r} is not a time")
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
    except EmptyValues:
        refuse_ragged_rows(path, fmt, columns)
        raise
    except UserError:
        raise
    except (ValueError, TypeError, OverflowError):  # the parser overflows on an integer past uint64
        refuse_ragged_rows(path, fmt, columns)  # pandas names a line counted from its block, not the file
        diagnose(path, fmt, columns)
        raise
    return sum(pq.ParquetFile(f).metadata.num_rows for f in staged_files(target))


def refuse_ragged_rows(path: Path, fmt: str, columns: ColumnNames) -> None:
    """Raise the UserError naming the first CSV line whose field count differs from the header's (lines:
    the first line with a bad token)."""
    if fmt == "parquet":
        return
    files = _input_files(Path(path))
    if fmt == "lines":
        refuse_bad_lines(files)
        return
    if fmt in _LAYOUTS:
        sep, names = _LAYOUTS[fmt]
        expected = len(names)
    else:
        sep, expected = _separator(files[0], columns.sep if fmt == "csv" else None), None
    for file in files:
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(f, delimiter=sep)
            for row in reader:
                if expected is None:  # the header line
                    expected = len(row)
                elif row and len(row) != expected:
                    where = f"{fmt} lines have" if fmt in _LAYOUTS else "the header has"
                    raise UserError(f"{file} line {reader.line_num} has {len(row)} fields where {where} "
                                    f"{expected} (a stray separator, e.g. a decimal comma?)")
        if fmt not in _LAYOUTS:
            expected = None  # each part has its own header line


def staged_name(index: int) -> str:
    return f"part_{index:05d}.parquet"  # zero-padded: file order is row order


def staged_files(target: Path) -> list[str]:
    return sorted(str(f) for f in Path(target).glob("part_*.parquet"))

"""Every input layout a user can hand over, read into the same raw schema."""
import zipfile

import pandas as pd
import pytest

from etl.readers import ColumnNames, read_ratings, resolve_input

ROWS = [(1, 10, 4.0, 100), (1, 20, 3.0, 200), (2, 10, 5.0, 150)]


def _read(path, tmp_path, fmt="auto", columns=ColumnNames()):
    resolved, fmt = resolve_input(path, fmt, tmp_path / "work")
    return fmt, read_ratings(resolved, fmt, columns).compute().reset_index(drop=True)


def _expect(frame):
    assert frame[["user_id", "item_id", "timestamp"]].values.tolist() == [[u, i, t] for u, i, _, t in ROWS]
    assert frame["rating"].tolist() == [r for _, _, r, _ in ROWS]
    assert str(frame["timestamp"].dtype) == "int64" and str(frame["rating"].dtype) == "float32"


@pytest.mark.parametrize("name, sep, fmt", [("u.data", "\t", "ml-100k"), ("ratings.dat", "::", "ml-1m")])
def test_movielens_files_without_header(tmp_path, name, sep, fmt):
    path = tmp_path / name
    path.write_text("".join(sep.join(map(str, (u, i, int(r), t))) + "\n" for u, i, r, t in ROWS))
    detected, frame = _read(path, tmp_path)
    assert detected == fmt
    _expect(frame)


def _ml20m(path):
    pd.DataFrame(ROWS, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)
    return path


def test_ml_20m_csv_file_folder_and_zip(tmp_path):
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    _ml20m(folder / "ratings.csv")
    for source in (folder / "ratings.csv", tmp_path):  # the file, and a parent folder holding it
        fmt, frame = _read(source, tmp_path)
        assert fmt == "ml-20m"
        _expect(frame)
    archive = tmp_path / "ml-20m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "ratings.csv", "ml-20m/ratings.csv")
        zf.writestr("ml-20m/movies.csv", "movieId,title\n")
    fmt, frame = _read(archive, tmp_path)
    assert fmt == "ml-20m"
    _expect(frame)


def test_generic_csv_with_named_columns_and_string_ids(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({"who": ["ann", "ann", "bob"], "what": ["x", "y", "x"],
                  "when": ["2020-01-01", "2020-01-02", "2020-01-01T12:00:00"]}).to_csv(path, index=False)
    fmt, frame = _read(path, tmp_path, columns=ColumnNames("who", "what", "when", None))
    assert fmt == "csv"
    assert frame["user_id"].tolist() == ["ann", "ann", "bob"]
    assert frame["timestamp"].tolist() == [1577836800, 1577923200, 1577880000]
    assert frame["rating"].tolist() == [1.0, 1.0, 1.0]


def test_parquet(tmp_path):
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(ROWS, columns=["u", "i", "r", "t"]).to_parquet(path)
    fmt, frame = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", "r"))
    assert fmt == "parquet"
    _expect(frame)


def test_forced_format_overrides_the_name(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in ROWS))
    _, frame = _read(path, tmp_path, fmt="ml-100k")
    _expect(frame)
    with pytest.raises(ValueError):
        _read(path, tmp_path, fmt="no-such-format")

"""Every input layout a user can hand over, read into the same raw schema."""
import gzip
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from contract.errors import UserError
from etl.__main__ import main
from etl.readers import ColumnNames, _to_int, read_ratings, resolve_input, stage_ratings

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


def _gzip(path, text):
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


def _csv_text(sep=",", columns=("userId", "movieId", "rating", "timestamp"), rows=ROWS):
    return "".join(sep.join(map(str, r)) + "\n" for r in [columns, *rows])


@pytest.mark.parametrize("name, expected", [("ratings.csv.gz", "ml-20m"), ("x.csv.gz", "csv"),
                                            ("x.tsv", "csv"), ("x.tsv.gz", "csv")])
def test_gzip_and_tsv_files_are_read_by_their_plain_name(tmp_path, name, expected):
    sep = "\t" if ".tsv" in name else ","
    path = tmp_path / name
    if name.endswith(".gz"):
        _gzip(path, _csv_text(sep))
    else:
        path.write_text(_csv_text(sep))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # dask warns when asked to split a compressed file
        fmt, frame = _read(path, tmp_path)
    assert fmt == expected
    _expect(frame)


def test_folder_search_finds_gzipped_movielens_ratings(tmp_path):
    (tmp_path / "ml-20m").mkdir()
    _gzip(tmp_path / "ml-20m" / "ratings.csv.gz", _csv_text())
    (tmp_path / "ml-20m" / "movies.csv").write_text("movieId,title\n")
    fmt, frame = _read(tmp_path, tmp_path)
    assert fmt == "ml-20m"
    _expect(frame)


def _write_parts(folder, suffix, rows=ROWS, sep=None):
    """One row per part, written last-first so that only the name sort gives file order."""
    folder.mkdir(exist_ok=True)
    sep = sep or ("\t" if ".tsv" in suffix else ",")
    for index in reversed(range(len(rows))):
        path = folder / f"part-{index}{suffix}"
        frame = pd.DataFrame([rows[index]], columns=["u", "i", "r", "t"])
        if suffix == ".parquet":
            frame.to_parquet(path)
        elif suffix.endswith(".gz"):
            _gzip(path, frame.to_csv(sep=sep, index=False))
        else:
            frame.to_csv(path, sep=sep, index=False)
    (folder / "_SUCCESS").write_text("")
    return folder


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".parquet"])
def test_folder_of_part_files_is_one_input_in_name_order(tmp_path, suffix):
    folder = _write_parts(tmp_path / "parts", suffix)
    fmt, frame = _read(folder, tmp_path, columns=ColumnNames("u", "i", "t", "r"))
    assert fmt == ("parquet" if suffix == ".parquet" else "csv")
    _expect(frame)


def test_folder_of_parts_must_be_one_kind_with_one_header(tmp_path):
    folder = _write_parts(tmp_path / "mixed", ".csv")
    pd.DataFrame([ROWS[0]], columns=["u", "i", "r", "t"]).to_parquet(folder / "part-9.parquet")
    with pytest.raises(UserError, match=r"\.csv.*\.parquet") as err:
        _read(folder, tmp_path, columns=ColumnNames("u", "i", "t", "r"))
    assert "\n" not in str(err.value)
    folder = _write_parts(tmp_path / "ragged", ".csv")
    (folder / "part-1.csv").write_text("u,i,t\n1,20,200\n")
    with pytest.raises(UserError, match="part-1.csv") as err:
        _read(folder, tmp_path, columns=ColumnNames("u", "i", "t", "r"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, sep", [("interactions.txt", "\t"), ("events.tsv", "\t"), ("e.csv", ";"), ("e.csv", "|")])
def test_separator_is_detected_from_the_header(tmp_path, name, sep):
    path = tmp_path / name
    path.write_text(_csv_text(sep, ("u", "i", "r", "t")))
    fmt, frame = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", "r"))
    assert fmt == "csv"
    _expect(frame)


def test_wrong_separator_names_the_one_used(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(_csv_text(";", ("u", "i", "r", "t")))
    _, frame = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", "r", sep=";"))
    _expect(frame)
    with pytest.raises(UserError, match=r"has no user column 'u' .*\(read with separator ','\)") as err:
        _read(path, tmp_path, columns=ColumnNames("u", "i", "t", "r", sep=","))
    assert "\n" not in str(err.value)


def test_sep_flag_accepts_an_escaped_tab(tmp_path, capsys):
    rows = [(u, i, 4.0, i) for u in range(1, 4) for i in range(u, u + 4)]
    folder = _write_parts(tmp_path / "tabs", ".tsv", rows)
    for part in folder.glob("*.tsv"):  # a name that says nothing about the separator
        part.rename(part.with_suffix(".csv"))
    out = tmp_path / "out"
    args = ["prepare", "--input", str(folder), "--output", str(out), "--negatives", "1", "--quiet",
            "--user-col", "u", "--item-col", "i", "--timestamp-col", "t", "--rating-col", "r"]
    assert main(args + ["--sep", ","]) == 2
    assert "(read with separator ',')" in capsys.readouterr().err
    assert main(args + ["--sep", r"\t"]) == 0, capsys.readouterr().err
    # 12 positives: 3 users x (one test + one validation) held out
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["train_rows"] == 6


INT64_MAX = 2**63 - 1


def test_csv_ids_past_int64_stay_exact_strings(tmp_path):
    path = tmp_path / "big.csv"
    ids = [str(INT64_MAX), str(2**63), str(2**64 - 1)]
    pd.DataFrame({"u": ids, "i": [1, 2, 3], "t": [1, 2, 3]}).to_csv(path, index=False)
    _, frame = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", None))
    assert frame["user_id"].tolist() == ids


def test_int64_edge_ids_come_back_exact(tmp_path):
    path = tmp_path / "edge.csv"
    pd.DataFrame({"u": [INT64_MAX, -(2**63), 1], "i": [1, 2, 3], "t": [1, 2, 3]}).to_csv(path, index=False)
    _, frame = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", None))
    assert frame["user_id"].tolist() == [INT64_MAX, -(2**63), 1] and str(frame["user_id"].dtype) == "int64"
    # text that pandas reads as float64 (a negative id next to a huge one) must not round
    assert _to_int(pd.Series(["-1", str(INT64_MAX), "2.0"]), "user id").tolist() == [-1, INT64_MAX, 2]
    with pytest.raises(UserError, match=f"user id column: {2**63} does not fit a signed 64-bit integer"):
        _to_int(pd.Series(["-1", str(2**63)]), "user id")


@pytest.mark.parametrize("big", [2**63, 2**64])
def test_csv_id_past_int64_after_the_sample_fails_cleanly(tmp_path, big):
    path = tmp_path / "late.csv"
    users = [1] * 1500 + [big]
    pd.DataFrame({"u": [str(u) for u in users], "i": 1, "t": 1}).to_csv(path, index=False)
    with pytest.raises(UserError, match=f"user id column: {big} does not fit a signed 64-bit integer") as err:
        stage_ratings(path, "csv", ColumnNames("u", "i", "t", None), tmp_path / "staged")
    assert "\n" not in str(err.value)


def test_uint64_parquet_ids(tmp_path):
    path = tmp_path / "u.parquet"
    frame = pd.DataFrame({"u": np.array([1, INT64_MAX], dtype="uint64"), "i": [1, 2], "t": [1, 2]})
    frame.to_parquet(path)
    _, read = _read(path, tmp_path, columns=ColumnNames("u", "i", "t", None))
    assert read["user_id"].tolist() == [1, INT64_MAX]
    frame.assign(u=np.array([1, 2**63], dtype="uint64")).to_parquet(path)
    with pytest.raises(UserError, match=f"user id column: {2**63} does not fit a signed 64-bit integer"):
        _read(path, tmp_path, columns=ColumnNames("u", "i", "t", None))


def test_movielens_layout_id_past_int64_fails_cleanly(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t4\t100\n" * 20 + f"{2**63}\t10\t4\t100\n")  # past the rows Dask samples
    with pytest.raises(UserError, match=f"user id column: {2**63} does not fit a signed 64-bit integer"):
        stage_ratings(path, "ml-100k", ColumnNames(), tmp_path / "staged")


@pytest.mark.parametrize("name", ["user_artists.dat", "ratings.dat", "u.data"])
def test_a_movielens_named_file_with_a_header_is_read_as_a_csv(tmp_path, name):
    """user_artists.dat (Last.fm) has a header and tabs: not MovieLens' headerless ratings.dat layout."""
    path = tmp_path / name
    path.write_text("userId\tmovieId\trating\ttimestamp\n" + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS))
    detected, frame = _read(path, tmp_path)
    assert detected == "csv"
    _expect(frame)


@pytest.mark.parametrize("line, expected", [
    ("32,802,4,5,856736290", "has 5 fields where the header has 4"),  # a decimal comma: never read shifted
    ("32,802,4", "has 3 fields where the header has 4"),
])
def test_a_row_with_another_field_count_is_named_by_its_line(tmp_path, monkeypatch, line, expected):
    monkeypatch.setattr("etl.readers.BLOCKSIZE", "100KB")  # several blocks: pandas counts lines per block
    path = tmp_path / "ratings.csv"
    rows = [f"{u},{i},4,{u * 1000 + i}" for u in range(1, 300) for i in range(1, 100)]
    rows[len(rows) - 5] = line  # past the 256 kB Dask samples
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match=f"{path} line {len(rows) - 3} {expected}") as err:
        stage_ratings(path, "ml-20m", ColumnNames(), tmp_path / "staged")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("column, value", [("rating", "inf"), ("rating", "-inf"), ("timestamp", "inf")])
def test_infinite_values_are_refused(tmp_path, column, value):
    path = tmp_path / "ratings.csv"
    frame = pd.DataFrame({"userId": [1, 2], "movieId": [3, 4], "rating": ["4", "5"], "timestamp": ["1", "2"]})
    frame.loc[1, column] = value
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match=f"{column} column: .*{value}"):
        stage_ratings(path, "ml-20m", ColumnNames(), tmp_path / "staged")


# ---- the per-user lines format (LightGCN/NGCF/SimpleX/UltraGCN's train.txt, test.txt) ---------------------
@pytest.mark.parametrize("name, text, expected", [
    ("train.txt", "0 10 11 12\n1 10\n2\n\n3 13 14 15 16 17\n", "lines"),  # ragged, a user without items
    ("train.txt", "0 10 11 12 13\n1 14 15 16 17\n", "lines"),  # a constant 5 fields: wider than a ratings row
    ("test", "0 10 11\n1 10\n", "lines"),  # no suffix
    ("pairs.txt", "0 10 5\n1 11 4\n", "csv"),  # a constant 2-4 integers may be ratings rows: stays a CSV
    ("ratings.tsv", "0\t10\t5\t100\n1\t11\t4\t101\n", "csv"),
    ("r.csv", "userId movieId\n1 2 3\n4 5\n", "csv"),  # a header line
    ("r.csv", "1,2,3\n4,5\n", "csv"),  # commas
    ("t.txt", "a 10 11\nb 12\n", "csv"),  # words: only --format lines reads them as ids
])
def test_auto_detects_the_lines_format_only_where_nothing_else_fits(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert resolve_input(path, "auto", tmp_path / "work")[1] == expected


def test_lines_become_one_row_per_item_with_integer_or_string_ids(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("7 10 11 12\n8\n\n  9\t13 10  \r\n")
    fmt, frame = _read(path, tmp_path)
    assert fmt == "lines" and frame[["user_id", "item_id"]].values.tolist() == [[7, 10], [7, 11], [7, 12], [9, 13],
                                                                                  [9, 10]]
    assert str(frame["user_id"].dtype) == "int64" and (frame["timestamp"] == 0).all() and (frame["rating"] == 1).all()
    words = tmp_path / "words.txt"
    words.write_text("alice i1 i2\nbob 00012\n")
    fmt, frame = _read(words, tmp_path, "lines")
    assert frame[["user_id", "item_id"]].values.tolist() == [["alice", "i1"], ["alice", "i2"], ["bob", "00012"]]


def test_lines_are_read_in_blocks_without_losing_a_line(tmp_path, monkeypatch):
    monkeypatch.setattr("etl.readers.BLOCKSIZE", "1KB")
    path = tmp_path / "train.txt"
    path.write_text("".join(f"{u} " + " ".join(str(u * 10 + k) for k in range(u % 7)) + "\n" for u in range(500)))
    frame = read_ratings(path, "lines").compute()
    assert len(frame) == sum(u % 7 for u in range(500))
    assert read_ratings(path, "lines").npartitions > 1


@pytest.mark.parametrize("lines, number, message", [
    (["1 2 3", "4 5,6", "7 8"], 2, "holds ','"),
    (["1 2 3"] * 1000 + ["4 5 2.5"], 1001, "'2.5' is not a 64-bit integer id"),
    (["1 2 3"] * 1000 + [f"4 {2**63}"], 1001, f"'{2**63}' is not a 64-bit integer id"),
])
def test_a_malformed_line_is_named_by_file_and_line(tmp_path, lines, number, message):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=f"{path} line {number}.*{message}"):
        stage_ratings(path, "lines", ColumnNames(), tmp_path / "staged")

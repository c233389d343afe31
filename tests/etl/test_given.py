"""`etl prepare --input TRAIN --test-input TEST [--validation-input VALID]` on real NVTabular and Dask.

Small train/test/validation files are written in each format the readers take (the per-user `lines` format of
the full-ranking benchmarks included) with planted rows: unseen users and items, test pairs that are train
positives or train interactions below --min-rating, repeats, validation pairs that are test pairs. Each
prepared folder is decoded through its saved workflow's vocabularies and compared with what an independent
reading of the files keeps.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from contract.feature_spec import FeatureSpec
from etl.__main__ import main, parser
from etl.prepare import PrepareConfig, prepare
from etl.workflow import FIRST_ID

from ..helpers import vocabulary

MIN_RATING = 3.5
UNSEEN_USER, UNSEEN_ITEM = 9_999, 99_999


# ---- the planted data: (user, item, rating) rows of each file ---------------------------------------
def _user(u: int) -> int:
    return 1_000 + 3 * u  # raw ids far from the encoded ones, so a missed decoding cannot pass


def _item(i: int) -> int:
    return 50_000 + 7 * i


def planted() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(11)
    train, test, valid = [], [], []
    for u in range(30):
        items = [_item(i) for i in rng.choice(90, 14, replace=False)]
        user = _user(u)
        train += [(user, i, 4.0 + (k % 2)) for k, i in enumerate(items[:8])]
        train.append((user, items[8], 2.0))  # below --min-rating: known, not trained on
        test += [(user, i, 5.0) for i in items[9:12]]
        valid += [(user, i, 4.0) for i in items[12:14]]
        if u % 3 == 0:
            test.append((user, items[0], 5.0))  # a train positive
            valid.append((user, items[1], 5.0))
        if u % 4 == 0:
            test.append((user, items[9], 5.0))  # a repeat inside the file
            valid.append((user, items[9], 4.0))  # a test pair
        if u % 5 == 0:
            test.append((user, items[8], 5.0))  # rated below the rule in train
            test.append((user, _item(200 + u), 1.0))  # below the rule in test (and an unseen item)
            test.append((user, items[3], 1.0))  # below the rule in test, a train positive too
    pairs = {(user, item) for user, item, _ in train + test}
    test += [(_user(u), train[0][1], 1.0) for u in range(5, 30, 5) if (_user(u), train[0][1]) not in pairs]  # below
    train.append(train[0])  # a repeated train row
    test += [(UNSEEN_USER, _item(1), 5.0), (UNSEEN_USER, UNSEEN_ITEM, 5.0), (_user(2), UNSEEN_ITEM, 5.0)]
    valid += [(UNSEEN_USER, _item(2), 4.0)]
    frames = {name: pd.DataFrame(rows, columns=["user", "item", "rating"]) for name, rows in
              (("train", train), ("test", test), ("validation", valid))}
    for frame in frames.values():  # increasing timestamps (the given split never reads them)
        frame["timestamp"] = np.arange(len(frame)) + 1_000_000
    return frames


def expected(frames: dict, min_rating: float | None) -> dict:
    """What an independent reading keeps of each file, and why it drops the rest (in the ETL's order)."""
    def positive(frame):
        return frame if min_rating is None else frame[frame["rating"] >= min_rating]

    train = frames["train"]
    users, items = set(train["user"]), set(train["item"])
    train_pairs = set(zip(positive(train)["user"], positive(train)["item"]))
    known = set(zip(train["user"], train["item"])) - train_pairs
    out = {"train": train_pairs, "known": known, "counts": {}}
    against = {"in_train": train_pairs, "in_known": known}
    for mapping in ("test", "validation"):
        counts, seen, kept = Counter(), set(), set()
        for user, item, rating in frames[mapping][["user", "item", "rating"]].itertuples(index=False):
            counts["rows_read"] += 1
            counts["oov_user_rows"] += user not in users
            counts["oov_item_rows"] += item not in items
            if user not in users or item not in items:
                counts["oov_rows_dropped"] += 1
            elif min_rating is not None and rating < min_rating:
                counts["below_min_rating_dropped"] += 1
            elif (user, item) in seen:
                counts["duplicates_dropped"] += 1
            else:
                seen.add((user, item))
                reason = next((r for r, pairs in against.items() if (user, item) in pairs), None)
                if reason:
                    counts[f"{reason}_dropped"] += 1
                else:
                    kept.add((user, item))
        out[mapping], out["counts"][mapping] = kept, counts
        against = {**against, "in_test": kept}
    return out


# ---- writing the files in each format ----------------------------------------------------------------
def _ratings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"user": "userId", "item": "movieId"})[["userId", "movieId", "rating", "timestamp"]]


def _lines(frame: pd.DataFrame, path: Path, tag=lambda kind, v: str(v), extra: str = "") -> Path:
    """One line per user in first-appearance order, items in row order (repeats kept)."""
    lines = [" ".join([tag("u", user), *(tag("i", i) for i in group["item"])])
             for user, group in frame.groupby("user", sort=False)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _string_ids(kind, value):
    return f"{kind}{value}"


WRITERS = {
    "csv": lambda f, p: _ratings(f).to_csv(p.with_suffix(".csv"), index=False) or p.with_suffix(".csv"),
    "tsv": lambda f, p: _ratings(f).to_csv(p.with_suffix(".tsv"), index=False, sep="\t") or p.with_suffix(".tsv"),
    "parquet": lambda f, p: _ratings(f).to_parquet(p.with_suffix(".parquet"), index=False) or p.with_suffix(".parquet"),
    "lines": lambda f, p: _lines(f, p.with_suffix(".txt")),
    "lines of strings": lambda f, p: _lines(f, p.with_suffix(".txt"), _string_ids),
}
# case -> (writer of train, test, validation; --min-rating; --format)
CASES = {
    "csv": (("csv",) * 3, MIN_RATING, "auto"),
    "tsv": (("tsv",) * 3, MIN_RATING, "auto"),
    "parquet": (("parquet",) * 3, MIN_RATING, "auto"),
    "lines of strings": (("lines of strings",) * 3, None, "lines"),  # every file read as lines: --format applies to all
    "mixed": (("lines", "csv", "parquet"), None, "auto"),  # each file's format detected on its own
}


@pytest.fixture(scope="module", params=list(CASES))
def given(request, tmp_path_factory):
    """(case, prepared DATA_DIR, stats, the log lines, the expected content) of each case, run through the CLI."""
    case = request.param
    writers, min_rating, fmt = CASES[case]
    root = tmp_path_factory.mktemp("given")
    frames = planted()
    paths = {name: WRITERS[kind](frames[name], root / name)
             for name, kind in zip(("train", "test", "validation"), writers)}
    if writers[0].startswith("lines"):  # as a benchmark's train.txt: a user without items adds nothing
        paths["train"].write_text(paths["train"].read_text() + ("u77777\n" if "strings" in case else "77777\n"))
    out = root / "data"
    args = ["prepare", "--input", paths["train"], "--test-input", paths["test"], "--validation-input",
            paths["validation"], "--output", out, "--format", fmt, *(["--min-rating", min_rating] if min_rating else [])]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main([str(a) for a in args]) == 0, err.getvalue()[-3000:]
    stats = json.loads(stdout.getvalue().strip().splitlines()[-1])
    want = expected(frames, min_rating)
    if "strings" in case:
        for key in ("train", "known", "test", "validation"):
            want[key] = {(_string_ids("u", u), _string_ids("i", i)) for u, i in want[key]}
    return case, out, stats, err.getvalue(), want, paths


def _decoded(data: Path, mapping: str) -> pd.DataFrame:
    spec = FeatureSpec.from_yaml(data)
    frame = spec.read(mapping)
    users, items = vocabulary(data / "workflow", "user_id"), vocabulary(data / "workflow", "item_id")
    return pd.DataFrame({"user": users[frame["user_id"]].to_numpy(), "item": items[frame["item_id"]].to_numpy(),
                         "label": frame["label"].to_numpy()})


def _pairs(frame: pd.DataFrame) -> set:
    return {(_native(u), _native(i)) for u, i in zip(frame["user"], frame["item"])}


def _native(value):
    return value.item() if hasattr(value, "item") else value


# ---- the outputs ---------------------------------------------------------------------------------------
def test_ids_round_trip_to_the_files_pairs_minus_the_dropped_rows(given):
    case, data, stats, _, want, _ = given
    for mapping in ("train", "test", "validation"):
        decoded = _decoded(data, mapping)
        assert (decoded["label"] == 1.0).all(), mapping
        assert len(decoded) == len(_pairs(decoded)), f"{mapping} holds a pair twice"
        assert _pairs(decoded) == want[mapping], mapping
    if want["known"]:
        assert _pairs(_decoded(data, "known")) == want["known"]
    else:  # no ratings (lines): every interaction is a positive
        assert "known" not in FeatureSpec.from_yaml(data).source_spec
    assert stats["train_rows"] == len(want["train"]) and stats["test_rows"] == len(want["test"])
    assert stats["test_users"] == len({u for u, _ in want["test"]})
    assert stats["validation_rows"] == len(want["validation"])
    assert stats["validation_users"] == len({u for u, _ in want["validation"]})


def test_every_dropped_row_is_counted_under_its_reason(given):
    case, _, stats, _, want, paths = given
    reasons = ("oov_rows_dropped", "below_min_rating_dropped", "duplicates_dropped", "in_train_dropped",
               "in_known_dropped")
    for mapping in ("test", "validation"):
        found, counts = stats["files"][mapping], want["counts"][mapping]
        for key in ("rows_read", "oov_user_rows", "oov_item_rows", *reasons):
            assert found[key] == counts[key], (mapping, key)
        assert found["rows_read"] == found["rows"] + sum(v for k, v in found.items() if k.endswith("_dropped"))
        assert found["input"] == str(paths[mapping])
    assert stats["files"]["validation"]["in_test_dropped"] == want["counts"]["validation"]["in_test_dropped"] > 0
    assert "in_test_dropped" not in stats["files"]["test"]
    test = stats["files"]["test"]
    assert test["oov_user_rows"] == 2 and test["oov_item_rows"] >= 2 and test["rows"] > 0
    assert test["in_train_dropped"] > 0 and test["duplicates_dropped"] > 0
    if case in ("csv", "tsv", "parquet"):  # ratings: the rule drops test rows, and pairs train has below it
        assert test["below_min_rating_dropped"] > 0 and test["in_known_dropped"] > 0
    assert stats["duplicates_dropped"] == 1  # train's repeated row


def test_each_drop_is_said_once_per_file(given):
    case, _, stats, log, _, paths = given
    notes = [line for line in log.splitlines() if " note: " in line]
    for mapping, flag in (("test", "--test-input"), ("validation", "--validation-input")):
        mine = [line for line in notes if f"{flag} {paths[mapping]}:" in line]
        found = stats["files"][mapping]
        said = {"out-of-vocabulary": "oov_rows_dropped", "below --min-rating": "below_min_rating_dropped",
                "repeat a pair": "duplicates_dropped", "are train positives": "in_train_dropped",
                "below the positive rule": "in_known_dropped", "are also test pairs": "in_test_dropped"}
        for words, key in said.items():
            lines = [line for line in mine if words in line]
            assert len(lines) == (1 if found.get(key) else 0), (mapping, words, mine)
            if lines:
                assert f" {found[key]:,} rows (" in lines[0]


def test_a_given_test_pair_never_reaches_train_and_train_is_as_given(given):
    _, data, _, _, want, _ = given
    train, test = _pairs(_decoded(data, "train")), _pairs(_decoded(data, "test"))
    assert not train & test and not train & _pairs(_decoded(data, "validation"))
    assert not test & _pairs(_decoded(data, "validation"))
    assert train == want["train"]  # nothing of test or validation added, nothing removed


def test_spec_states_the_given_protocol_and_no_series(given):
    _, data, stats, _, _, paths = given
    spec = FeatureSpec.from_yaml(data, required=("train", "test", "validation"))
    assert spec.given_split and "test_samples_per_series" not in spec.metadata
    protocol = {"split": "given", "train": str(paths["train"]), "test": str(paths["test"]),
                "validation": str(paths["validation"])}
    assert spec.protocol == protocol == stats["protocol"]
    assert spec.workflow_id == stats["workflow_id"] and spec.first_index == FIRST_ID
    for mapping in ("train", "test", "validation"):
        spec.check_ids(spec.read(mapping), mapping)
    assert stats["users"] == spec.user_cardinality - FIRST_ID == len(vocabulary(data / "workflow", "user_id"))
    assert stats["train_partitions"] == len(spec.source_spec["train"][0]["files"]) == 8


def test_held_out_files_are_sorted_by_user_with_each_user_in_one_file(given):
    _, data, _, _, _, _ = given
    for mapping in ("test", "validation"):
        owners = {}
        for file in sorted((data / mapping).glob("part_*.parquet")):
            frame = pq.read_table(file).to_pandas()
            keys = list(zip(frame["user_id"], frame["item_id"]))
            assert keys == sorted(keys), file
            for user in set(frame["user_id"]):
                assert owners.setdefault(user, file) == file, f"user {user} in {owners[user]} and {file}"
        assert min(owners) >= FIRST_ID


def test_each_file_format_is_detected_on_its_own(given):
    case, _, stats, _, _, _ = given
    if case == "mixed":
        assert (stats["format"], stats["files"]["test"]["format"], stats["files"]["validation"]["format"]) == \
            ("lines", "csv", "parquet")
    elif case == "lines of strings":
        assert stats["format"] == stats["files"]["test"]["format"] == "lines"


# ---- refusals: one line, exit 2, nothing left ------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("small")
    frames = planted()
    return {"train": WRITERS["lines"](frames["train"], root / "train"),
            "test": WRITERS["lines"](frames["test"], root / "test"), "root": root}


def _refused(capsys, tmp_path, small, *extra) -> str:
    out = tmp_path / "out"
    code = main(["prepare", "--input", str(small["train"]), "--output", str(out), "--quiet", *map(str, extra)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    return err[-1]


def test_refuses_an_empty_test_file(capsys, tmp_path, small):
    empty = tmp_path / "test.txt"
    empty.write_text("")
    assert f"--test-input: input {empty} is empty" in _refused(capsys, tmp_path, small, "--test-input", empty)
    users_only = tmp_path / "users.txt"  # lines with a user and no item: no pair at all
    users_only.write_text("1000\n1003\n")
    message = _refused(capsys, tmp_path, small, "--test-input", users_only, "--format", "lines")
    assert f"--test-input: {users_only} holds no interactions" in message


def test_refuses_a_test_file_that_shares_nothing_with_train(capsys, tmp_path, small):
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("1 2 3 4\n5 6 7\n1000 8\n")  # user 1000 is train's, item 8 is not
    message = _refused(capsys, tmp_path, small, "--test-input", foreign)
    assert f"--test-input {foreign}: none of its 6 rows has both a user and an item of the train file" in message
    assert "(5 with an unseen user, 6 with an unseen item)" in message


def test_refuses_a_test_file_with_nothing_left(capsys, tmp_path, small):
    message = _refused(capsys, tmp_path, small, "--test-input", small["train"])  # test = train
    assert f"--test-input {small['train']}: no pair left to evaluate" in message and "in train" in message


@pytest.mark.parametrize("line, number, why", [
    ("1003 50007,50014", 3, "holds ','"),  # a CSV row among lines
    ("1006 50007 x", 3, "'x' is not a 64-bit integer id"),  # past the sampled lines: see below
])
def test_refuses_a_malformed_line_naming_file_and_line(capsys, tmp_path, small, line, number, why):
    bad = tmp_path / "test.txt"
    head = ["1000 50007", "1003 50014"]
    if "x" in line:  # ids are integers when the first lines' are: a later word is refused
        head = head + [f"{1000 + 3 * (k % 30)} {50_000 + 7 * (k % 90)}" for k in range(1000)]
        number = len(head) + 1
    bad.write_text("\n".join([*head, line, "1009 50021"]) + "\n")
    message = _refused(capsys, tmp_path, small, "--test-input", bad, "--format", "lines")
    assert f"--test-input: {bad} line {number}" in message and why in message


def test_refuses_a_missing_file(capsys, tmp_path, small):
    missing = tmp_path / "nope.txt"
    assert f"--test-input {missing} does not exist" in _refused(capsys, tmp_path, small, "--test-input", missing)
    message = _refused(capsys, tmp_path, small, "--test-input", small["test"], "--validation-input", missing)
    assert f"--validation-input {missing} does not exist" in message


@pytest.mark.parametrize("extra, expected", [
    (["--validation-input", "{test}"], "--validation-input is part of a given split"),
    (["--test-input", "{test}", "--split", "users"], "--split users holds out whole users"),
    (["--test-input", "{test}", "--workflow", "{root}"], "--test-input fits a new workflow on --input"),
    (["--test-input", "{test}", "--negatives", "50"], "--negatives shapes a split made here"),
    (["--test-input", "{test}", "--no-validation"], "--validation/--no-validation shapes a split made here"),
])
def test_refuses_flags_that_do_not_apply(capsys, tmp_path, small, extra, expected):
    extra = [a.format(test=small["test"], root=small["root"]) for a in extra]
    assert expected in _refused(capsys, tmp_path, small, *extra)


def test_prepare_help_documents_the_given_split():
    prepare_parser = parser()._subparsers._group_actions[0].choices["prepare"]
    text = " ".join(prepare_parser.format_help().split())
    for words in ("--test-input TEST_INPUT", "--validation-input VALIDATION_INPUT", "fitted on --input",
                  "counted, said and dropped", "no sampled negatives", "`user item item ...`", "lines"):
        assert words in text, words


def test_the_python_entry_point_takes_the_same_split(tmp_path, small):
    """prepare() itself (no CLI): the given split's files as PrepareConfig fields; negatives are not used."""
    stats = prepare(PrepareConfig(input=small["train"], test_input=small["test"], output=tmp_path / "data",
                                  partitions=3, quiet=True))
    assert stats["train_partitions"] == 3 and stats["protocol"]["validation"] is None
    assert "validation_rows" not in stats and set(stats["files"]) == {"test"}
    assert not (tmp_path / "data" / "validation").exists()
    assert FeatureSpec.from_yaml(tmp_path / "data").given_split


def test_integer_test_ids_meet_a_train_file_of_string_ids_as_text(capsys, tmp_path):
    train = tmp_path / "train.csv"  # one id that is not a number: every id of the file is read as text
    pd.DataFrame({"userId": ["1000", "1000", "1003", "x9"], "movieId": ["7", "8", "7", "8"]}).to_csv(train, index=False)
    test = tmp_path / "test.txt"
    test.write_text("1000 8 9\n1003 8\n")  # integers: as text they are train's ids
    out = tmp_path / "data"
    assert main(["prepare", "--input", str(train), "--test-input", str(test), "--output", str(out), "--quiet"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["files"]["test"]["format"] == "lines" and stats["files"]["test"]["oov_item_rows"] == 1
    assert _pairs(_decoded(out, "test")) == {("1003", "8")}  # ("1000", "8") is a train positive
    assert stats["files"]["test"]["in_train_dropped"] == 1


def test_refuses_text_test_ids_against_a_train_file_of_integer_ids(capsys, tmp_path, small):
    test = tmp_path / "test.csv"
    pd.DataFrame({"userId": ["1000", "u1"], "movieId": ["50007", "50014"]}).to_csv(test, index=False)
    message = _refused(capsys, tmp_path, small, "--test-input", test)
    assert f"{test} has ids that are not integers" in message and str(small["train"]) in message

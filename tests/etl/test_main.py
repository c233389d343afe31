"""Bad input: a one-line error naming the problem, exit code 2, and no output left behind."""
import zipfile

import pytest

from etl.__main__ import main

from ..helpers import interrupt, run_module, write_ratings_csv


def _prepare(capsys, tmp_path, source, *extra):
    out = tmp_path / "out"
    code = main(["prepare", "--input", str(source), "--output", str(out), "--workflow-dir", str(tmp_path / "wf"),
                 "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and err[-1].startswith("error: ")
    assert not out.exists() and not (tmp_path / "wf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out") or p.name.startswith(".wf")]
    return err[-1]


def _file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


CASES = {
    "missing path": (lambda t: t / "nope.csv", "does not exist"),
    "empty file": (lambda t: _file(t, "ratings.csv", ""), "is empty"),
    "missing column": (lambda t: _file(t, "r.csv", "userId,itemId,rating\n1,2,3\n"), "no item column 'movieId'"),
    "unparsable id": (lambda t: _file(t, "ratings.dat", "1::2::3::4\nx::2::3::5\n"), "cannot parse 'x'"),
    "unparsable timestamp": (lambda t: _file(t, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,soon\n"),
                             "timestamp column: cannot parse 'soon'"),
    "ragged rows": (lambda t: _file(t, "u.data", "1\t2\t3\t4\n1\t2\t3\t4\t5\n"),
                    "line 2 has 5 fields where ml-100k lines have 4"),
    "short rows": (lambda t: _file(t, "u.data", "1\t2\t3\t4\n1\t2\n"), "line 2 has 2 fields where ml-100k lines have 4"),
    "corrupt zip": (lambda t: _file(t, "ml-1m.zip", b"PK\x03\x04 not really a zip"), "corrupt"),
    "random bytes": (lambda t: _file(t, "ratings.csv", bytes(range(256)) * 40), "not a readable CSV"),
    "folder without ratings": (lambda t: (t / "empty_dir").mkdir() or t / "empty_dir", "no ratings file"),
    "header only": (lambda t: _file(t, "ratings.csv", "userId,movieId,rating,timestamp\n"), "no interactions"),
    "unknown suffix": (lambda t: _file(t, "ratings.bin", "1,2,3,4\n"), "cannot tell the format"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_cleanly(case, tmp_path, capsys):
    make, expected = CASES[case]
    message = _prepare(capsys, tmp_path, make(tmp_path))
    assert expected in message


def test_zip_without_ratings(tmp_path, capsys):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/movies.dat", "1::Toy Story::Animation\n")
    assert "holds no ratings file" in _prepare(capsys, tmp_path, archive)


def test_existing_output_is_refused_unless_overwrite(tmp_path, capsys):
    raw = write_ratings_csv(tmp_path / "ratings.csv", [(1, i, 4.0, i) for i in range(1, 6)] +
                            [(2, i, 4.0, i) for i in range(3, 9)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["prepare", "--input", str(raw), "--output", str(out), "--workflow-dir", str(tmp_path / "wf"),
            "--negatives", "2", "--quiet"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(args + ["--overwrite"]) == 0
    assert (out / "feature_spec.yaml").is_file() and not (out / "keep.txt").exists()


def test_download_offline_says_where_to_put_the_zip(tmp_path):
    result = run_module("etl", "download", "ml-1m", "--dest", tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ml-1m.zip" in lines[0] and "put it at" in lines[0]
    assert not list(tmp_path.iterdir())


def test_synthetic_refuses_an_existing_output_unless_overwrite(tmp_path):
    out = tmp_path / "ratings.csv"
    out.write_text("mine\n")
    args = ["etl", "synthetic", "--output", out, "--users", "30", "--items", "60", "--rows", "900"]
    refused = run_module(*args, timeout=120)
    assert refused.returncode == 2 and out.read_text() == "mine\n"
    assert refused.stderr.strip().splitlines() == [f"error: output {out} already exists (pass --overwrite to replace it)"]
    assert run_module(*args, "--overwrite", timeout=120).returncode == 0
    assert out.read_text().startswith("userId,movieId,rating,timestamp")


def test_ctrl_c_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "ratings.csv"
    result = interrupt("etl", "synthetic", "--output", out, "--rows", "20000000",
                       ready=lambda: any(tmp_path.glob(".ratings.csv.tmp-*")))
    assert result.returncode == 130 and result.stderr.strip().splitlines()[-1] == "interrupted", result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())

"""Atomic outputs: complete or absent, never replacing without the flag, umask honoured, stale temporaries swept."""
import os
import subprocess
import sys

import pytest

from contract.atomic import atomic_dir, atomic_file, sweep_stale_temporaries
from contract.errors import UserError


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return oct(path.stat().st_mode & 0o777)


def test_outputs_honour_the_umask(tmp_path, umask_022):
    with atomic_dir(tmp_path / "data") as tmp:
        (tmp / "part.parquet").write_text("x")
    with atomic_file(tmp_path / "model.pth") as tmp:
        tmp.write_text("weights")
    assert _mode(tmp_path / "data") == "0o755" and _mode(tmp_path / "data" / "part.parquet") == "0o644"
    assert _mode(tmp_path / "model.pth") == "0o644"
    os.umask(0o077)
    with atomic_file(tmp_path / "private.pth") as tmp:
        tmp.write_text("weights")
    assert _mode(tmp_path / "private.pth") == "0o600"


def test_a_failure_leaves_nothing_and_the_old_result_intact(tmp_path):
    final = tmp_path / "data"
    final.mkdir()
    (final / "keep").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(final, overwrite=True) as tmp:
        (tmp / "half").write_text("new")
        raise RuntimeError("killed")
    assert (final / "keep").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_existing_output_needs_the_flag(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="already exists"), atomic_dir(tmp_path / "data"):
        pass


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_runs_are_swept_live_ones_kept(tmp_path):
    stale = tmp_path / f".data.tmp-{_dead_pid()}-abc"
    stale.mkdir()
    (stale / "big.parquet").write_text("x" * 1000)
    live = tmp_path / f".data.tmp-{os.getpid()}-def"  # a concurrent run of this very process
    live.mkdir()
    other = tmp_path / f".other.tmp-{_dead_pid()}-ghi"  # another target's: not ours to remove
    other.mkdir()
    assert sweep_stale_temporaries(tmp_path / "data") == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(tmp_path):
    final = tmp_path / "out.csv"
    with pytest.raises(UserError, match=f"^cannot write {final}: No space left on device$"):
        # /dev/full answers every write with ENOSPC; plain open() only (libraries may unlink a path they failed on)
        with atomic_file(final), open("/dev/full", "wb", buffering=0) as full:
            full.write(b"x")
    folder = tmp_path / "out"
    with pytest.raises(UserError, match=f"^cannot write {folder}: No space left on device$"):
        with atomic_dir(folder):  # a Dask task's error keeps pyarrow's words, not the errno
            raise ValueError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert not list(tmp_path.iterdir())

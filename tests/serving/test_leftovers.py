"""serving/leftovers.py with real processes, /dev/shm segments and folders (no Triton: test_server.py has it)."""
from __future__ import annotations

import subprocess
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import pytest

from serving.leftovers import SCRATCH, Leftovers, _stat, sweep_killed_servers


@pytest.fixture
def held(tmp_path):
    """A running process, a /dev/shm segment and a folder, as a server's Triton holds them."""
    proc = subprocess.Popen(["sleep", "60"])
    segment = shared_memory.SharedMemory(create=True, size=4096)
    resource_tracker.unregister(segment._name, "shared_memory")  # the test's tracker must not remove it
    segment.close()
    folder = tmp_path / "folderABCDEF"
    (folder / "1").mkdir(parents=True)
    try:
        yield proc, Path("/dev/shm") / segment.name, folder
    finally:
        proc.kill()
        proc.wait()
        (Path("/dev/shm") / segment.name).unlink(missing_ok=True)


def record(scratch: Path, proc, segment: Path, folder: Path, start_offset=0) -> Leftovers:
    scratch.mkdir(parents=True, exist_ok=True)
    found = Leftovers(scratch)
    found.processes = {proc.pid: _stat(proc.pid)[2] + start_offset}
    found.segments, found.folders = {str(segment)}, {str(folder)}
    found.save()
    return found


def test_a_start_removes_what_a_killed_server_recorded(tmp_path, held):
    proc, segment, folder = held
    dead = subprocess.Popen(["true"])
    dead.wait()  # the killed server: its pid no longer runs
    stale = tmp_path / "home" / f".{SCRATCH}.tmp-{dead.pid}-abcd"
    record(stale, proc, segment, folder)
    (stale / "workspace").mkdir()
    live = record(tmp_path / "home" / f".{SCRATCH}.tmp-{proc.pid}-efgh", proc, segment, folder)  # a running server's
    sweep_killed_servers(tmp_path / "home")
    assert proc.wait(timeout=5) is not None and not segment.exists() and not folder.exists()
    assert not stale.exists() and live.path.exists(), "only a dead server's scratch folder goes"


def test_a_reused_pid_is_left_running_and_the_recorded_segment_and_folder_are_removed(tmp_path, held):
    """A recorded pid whose start time differs is another process now: left running. The segment and the
    folder recorded beside it are the dead server's, and go all the same."""
    proc, segment, folder = held
    assert segment.exists() and folder.is_dir()
    Leftovers.load(record(tmp_path / "s", proc, segment, folder, start_offset=-1).path.parent).remove(grace_s=0.2)
    with pytest.raises(subprocess.TimeoutExpired):  # not signalled: still running a while later
        proc.wait(timeout=0.5)
    assert not segment.exists(), f"{segment} left in /dev/shm"
    assert not folder.exists(), f"{folder} left"


def test_a_record_cut_short_by_a_kill_removes_nothing(tmp_path):
    (tmp_path / "leftovers.json").write_text('{"processes": [[1')
    found = Leftovers.load(tmp_path)
    assert not found.processes and not found.segments and not found.folders

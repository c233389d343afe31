"""What Triton's processes leave behind when they do not stop cleanly, recorded and then removed.

Stopping, Triton's HTTP frontend waits --exit-timeout seconds for the clients' keep-alive connections
to close, then exits "immediately" without unloading its models: under load the python-backend stubs
keep running (orphans, each with PyTriton's tensor-store process and its resource tracker) and their
/dev/shm segments stay. Every stop leaves the /tmp/folderXXXXXX copy of each model's repository that
Triton loads the model from, and a kill -9 of this process leaves all of that and PyTriton's workspace.

So the processes under tritonserver, the segments they map and the folders the stubs run from are
recorded (in this server's scratch folder, which also holds the workspace) while it serves; what
outlives the stop is ended and removed, and a start removes what a killed server recorded. A process is
recorded with its start time: a pid alone may belong to another process by the time it is ended.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

from contract.atomic import scratch_dir, stale_temporaries

RECORD = "leftovers.json"
SCRATCH = "serving"  # ~/.cache/pytriton/.serving.tmp-<pid>-<random>: the workspace, the record, Triton's log


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[19])


def _argv(pid: int) -> list[str]:
    try:
        return [os.fsdecode(a) for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat:
            children.setdefault(stat[1], []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def segments_of(pid: int) -> set[str]:
    """The /dev/shm segments a process maps or holds open."""
    targets = []
    try:
        targets += [line.split(maxsplit=5)[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:  # closed meanwhile
                pass
    except OSError:
        pass
    return {t.removesuffix(" (deleted)") for t in targets if t.startswith("/dev/shm/")}


def model_folder(argv: list[str]) -> str | None:
    """The folder a python-backend stub's model comes from: Triton's /tmp/folderXXXXXX/1/model.py."""
    if len(argv) > 1 and argv[0].endswith("triton_python_backend_stub"):
        folder = Path(argv[1]).parents[1]
        if folder.name.startswith("folder"):
            return str(folder)
    return None


class Leftovers:
    """What Triton's processes hold, kept in `scratch`/leftovers.json so that a later start can remove it."""

    def __init__(self, scratch: Path):
        self.path = scratch / RECORD
        self.processes: dict[int, int] = {}
        self.segments: set[str] = set()
        self.folders: set[str] = set()

    @classmethod
    def load(cls, scratch: Path) -> Leftovers:
        found = cls(scratch)
        try:
            record = json.loads(found.path.read_text())
            found.processes = {int(pid): start for pid, start in record["processes"]}
            found.segments, found.folders = set(record["segments"]), set(record["folders"])
        except (OSError, ValueError, KeyError, TypeError):  # killed before (or while) the first record
            pass
        return found

    def survey(self) -> None:
        """Add the processes under this process's tritonserver now, their segments and model folders."""
        servers = [p for p in descendants(os.getpid()) if _argv(p)[:1] and _argv(p)[0].endswith("/tritonserver")]
        for pid in servers + [d for server in servers for d in descendants(server)]:
            stat = _stat(pid)
            if stat is None:
                continue
            self.processes[pid] = stat[2]
            self.segments |= segments_of(pid)
            folder = model_folder(_argv(pid))
            if folder:
                self.folders.add(folder)
        self.save()

    def save(self) -> None:
        record = {"processes": sorted(self.processes.items()), "segments": sorted(self.segments),
                  "folders": sorted(self.folders)}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)  # a kill while writing leaves the previous record
        except OSError:  # e.g. a full disk: the record only serves a start after a kill -9, never the stop
            pass

    def remove(self, grace_s: float = 3.0) -> None:
        """End the recorded processes still running (SIGTERM, then SIGKILL), then remove segments and folders."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            running = [pid for pid, start in self.processes.items() if self._running(pid, start)]
            for pid in running:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + grace_s
            while running and time.monotonic() < deadline:
                time.sleep(0.05)
                running = [pid for pid in running if self._running(pid, self.processes[pid])]
            if not running:
                break
        for name in self.segments:
            Path(name).unlink(missing_ok=True)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _running(pid: int, start: int) -> bool:
        stat = _stat(pid)
        return stat is not None and stat[2] == start and stat[0] != "Z"


def sweep_killed_servers(home: Path) -> None:
    """Remove what servers killed with -9 left: their processes, segments, folders and scratch folder in `home`."""
    for stale in stale_temporaries(home / SCRATCH):
        Leftovers.load(stale).remove()
        shutil.rmtree(stale, ignore_errors=True)


def server_scratch(home: Path) -> Path:
    """This server's scratch folder in `home` (PyTriton's), named so that a start after a kill -9 finds it."""
    return scratch_dir(SCRATCH, home)

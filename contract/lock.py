"""An exclusive lock on an output for the whole of a run: a second run on the same output refuses.

Checking that an output does not exist only at the start lets two runs started together both
"succeed", one silently replacing the other. The lock is `flock` on a hidden `.NAME.lock` beside the
output: the kernel drops it when its holder exits, however it exits, so a lock file left by a
killed run is stale and never blocks. The file names its holder (pid, command) for the refusal.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

from .errors import UserError


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def exclusive(target: Path):
    """Hold the lock on `target` (a file or folder, existing or not) while the block runs."""
    target = Path(target)
    path = lock_path(target)
    fd = _acquire(target, path)
    try:
        os.ftruncate(fd, 0)
        command = [Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]]  # as typed: python -m etl prepare ...
        os.write(fd, f"pid {os.getpid()}: {' '.join(command)}".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: the next run makes a fresh file
        os.close(fd)


def _acquire(target: Path, path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {path.parent}: {exc.strerror}")
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"cannot write to {path.parent}: {exc.strerror}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "a run that is starting"
            os.close(fd)
            raise UserError(f"{target} is in use by another run ({holder}): wait for it to end or choose another "
                            "output")
        # The holder we waited on may have removed the file before we locked it: lock the one on disk.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


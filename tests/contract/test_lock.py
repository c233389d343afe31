"""The lock on an output: a second process refuses while the first holds it; a killed holder never blocks."""
import os
import signal
import subprocess
import sys

import pytest

from contract.errors import UserError
from contract.lock import exclusive, lock_path

HOLD = """import sys, time
from contract.lock import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(target):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_refuses_naming_the_holder_and_a_killed_holder_is_stale(tmp_path):
    target = tmp_path / "out"
    holder = _holder(target)
    try:
        with pytest.raises(UserError, match=rf"{target} is in use by another run \(pid {holder.pid}: python"):
            with exclusive(target):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert lock_path(target).exists()  # what a kill -9 leaves ...
    with exclusive(target):  # ... is no block
        assert f"pid {os.getpid()}" in lock_path(target).read_text()
    assert not lock_path(target).exists()


def test_released_when_the_block_ends_however_it_ends(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), exclusive(target):
        raise KeyboardInterrupt
    with exclusive(target):
        pass
    assert list(tmp_path.iterdir()) == []

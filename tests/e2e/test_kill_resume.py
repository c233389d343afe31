"""kill -9 in the middle of a run, then --resume: the result is the uninterrupted run's, for both families."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ..helpers import train

FLAGS = {"prepared": ["-b", "4096", "-f", "8", "--layers", "16", "8", "--dropout", "0.2"],
         "prepared_lists": ["-b", "64", "--layers", "32", "8", "--total_anneal_steps", "20"]}


@pytest.mark.parametrize("layout", ["prepared", "prepared_lists"])
def test_a_run_killed_after_an_epoch_resumes_to_the_uninterrupted_result(layout, request, tmp_path):
    data = request.getfixturevalue(layout)
    common = ["--data", data, "-e", "6", *FLAGS[layout]]
    straight = train(*common, "--checkpoint_dir", tmp_path / "straight")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "training", *map(str, common), "--checkpoint_dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "last.pth").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reached = torch.load(killed / "last.pth", weights_only=True)["meta"]["epoch"]
    assert reached < 5, "the run ended before it could be killed"
    resumed = train(*common, "--checkpoint_dir", killed, "--resume")
    a, b = (torch.load(folder / "last.pth", weights_only=True) for folder in (tmp_path / "straight", killed))
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["meta"]["step"] == b["meta"]["step"]
    for key in ("best_epoch", "best_hr", "best_ndcg", "epochs"):
        assert resumed[key] == straight[key], key

"""Helpers shared by the tests: run a module as a user would, write small raw and BYO datasets."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "feature_specs" / "byo_csv" / "feature_spec.yaml"


def run_module(*args, timeout=600, cwd=None, env=None, file_size_limit=None):
    """Run `python -m ...` in a fresh process, as a user would; `file_size_limit` (bytes) makes a bigger
    write fail as a full disk does, without root or a small filesystem."""
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or os.getcwd(), env={**os.environ, **(env or {})},
                          preexec_fn=file_size_limit and functools.partial(_limit_file_size, file_size_limit))


def torchrun(module: str, *args, nproc=2, timeout=600) -> subprocess.CompletedProcess:
    """`torchrun --standalone` of `python -m MODULE ARGS` on CPU (gloo): every rank must exit 0 with no gloo
    thread left at its very end (tests/rank_exit.py says why)."""
    result = run_module("torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                        ROOT / "tests" / "rank_exit.py", module, *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    left = re.findall(r"rank (\d+) threads at exit: ([^\n]*?)(?=rank \d+ threads at exit:|\n|\Z)", result.stderr)
    assert len(left) == nproc, result.stderr[-3000:]
    assert not [names for _, names in left if "gloo" in names], left
    return result


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def start_until(*args, ready, timeout=300) -> subprocess.Popen:
    """Start `python -m ...` and return once `ready()` holds, the command still running."""
    proc = subprocess.Popen([sys.executable, "-m", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the command ended before it was ready: {proc.communicate()[1][-2000:]}"
    return proc


def finish(proc: subprocess.Popen, timeout=300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def interrupt(*args, ready, timeout=300) -> subprocess.CompletedProcess:
    """Run `python -m ...` and press Ctrl-C (SIGINT) once `ready()` holds, as a user at a terminal would."""
    proc = start_until(*args, ready=ready, timeout=timeout)
    proc.send_signal(signal.SIGINT)
    return finish(proc, timeout)


@contextlib.contextmanager
def paused(*args, ready, timeout=300):
    """Run `python -m ...`, stopped (SIGSTOP) once `ready()` holds while the block runs, then let it finish:
    a second command in the block meets the first one mid-run, however fast the machine is."""
    proc = start_until(*args, ready=ready, timeout=timeout)
    proc.send_signal(signal.SIGSTOP)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)


def train(*args, timeout=600) -> dict:
    """`python -m training ...` that must succeed; returns its final JSON summary."""
    result = run_module("training", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_fails(*args) -> str:
    """`python -m training ...` that must fail with exit 2; returns its last stderr line."""
    result = run_module("training", *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[-1]


def write_ratings_csv(path: Path, rows) -> Path:
    """rows: (user, item, rating, timestamp) tuples in MovieLens' ratings.csv layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)
    return path


def write_byo_dataset(folder: Path, users=60, items=40, seed=0, header=True) -> Path:
    """Each user likes items of one residue class mod 4: learnable, and far from popularity."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, folder / "feature_spec.yaml")
    rows, tests = [], []
    for user in range(users):
        liked = [i for i in range(items) if i % 4 == user % 4]
        picks = rng.choice(liked, size=7, replace=False)
        rows += [(user, int(i)) for i in picks[:-1]]
        others = [i for i in range(items) if i not in picks]
        tests.append([(user, int(picks[-1]), 1.0)] + [(user, int(i), 0.0) for i in rng.choice(others, 5, replace=False)])
    ids = pd.DataFrame(rows, columns=["customer", "product"])
    labels = pd.DataFrame({"clicked": np.ones(len(ids), dtype=np.float32)})
    half = len(ids) // 2
    for i, part in enumerate((slice(0, half), slice(half, None))):
        ids.iloc[part].to_csv(folder / f"train_ids_{i}.csv", index=False, header=header)
        labels.iloc[part].to_csv(folder / f"train_labels_{i}.csv", index=False, header=header)
    pd.DataFrame([r for t in tests for r in t], columns=["customer", "product", "clicked"]).to_csv(
        folder / "test.csv", index=False, header=header)
    return folder


def vocabulary(workflow_dir: Path, column: str) -> pd.Series:
    """Raw values of a saved workflow's id column, indexed by encoded id."""
    from contract.vocabulary import read_vocabulary
    from etl.workflow import vocabulary_files

    return read_vocabulary(Path(workflow_dir) / vocabulary_files()[column], column)


def truncated_vocabulary(workflow_dir: Path, copy: Path) -> Path:
    """A copy of a saved workflow whose item vocabulary lost its second half (a full disk, a killed copy)."""
    shutil.copytree(workflow_dir, copy)
    vocab = copy / "categories" / "unique.item_id.parquet"
    vocab.write_bytes(vocab.read_bytes()[: vocab.stat().st_size // 2])
    return copy


def write_given_split(folder: Path, users=60, items=40, train_per_user=8, test_per_user=3, seed=0) -> Path:
    """A user's own split as the training side reads it (encoded parquet, metadata.protocol.split given): each
    user likes the items of one residue class mod 4, some in train and others in test (several per user)."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "test": []}
    for user in range(users):
        liked = rng.permutation([i for i in range(items) if i % 4 == user % 4])
        parts["train"] += [(user, int(i)) for i in liked[:train_per_user]]
        parts["test"] += [(user, int(i)) for i in liked[train_per_user:train_per_user + test_per_user]]
    features = ["user_id", "item_id", "label"]
    for name, rows in parts.items():
        (folder / name).mkdir(parents=True)
        frame = pd.DataFrame(rows, columns=features[:2]).assign(label=np.float32(1))
        frame.to_parquet(folder / name / "part_00000.parquet", index=False)
    spec = {
        "feature_spec": {"user_id": {"dtype": "torch.int64", "cardinality": users},
                         "item_id": {"dtype": "torch.int64", "cardinality": items}, "label": {"dtype": "torch.float32"}},
        "source_spec": {name: [{"type": "parquet", "features": features, "files": [f"{name}/part_00000.parquet"]}]
                        for name in parts},
        "channel_spec": {"user_ch": ["user_id"], "item_ch": ["item_id"], "label_ch": ["label"]},
        "metadata": {"protocol": {"split": "given"}},
    }
    (folder / "feature_spec.yaml").write_text(json.dumps(spec))  # JSON is YAML
    return folder

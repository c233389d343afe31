"""Shared fixtures: small real datasets written by the tests, prepared with the real ETL."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from etl.prepare import PrepareConfig, prepare
from etl.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args, timeout=600, cwd=None, env=None):
    """Run `python -m ...` in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env={**os.environ, **(env or {})})


def write_ratings_csv(path: Path, rows) -> Path:
    """rows: (user, item, rating, timestamp) tuples in MovieLens' ratings.csv layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "ratings.csv"
    generate(path, users=400, items=300, rows=30_000, seed=3)
    return path


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, synthetic_raw) -> Path:
    """A prepared DATA_DIR (8 train partitions) and its workflow under the same temp root."""
    root = tmp_path_factory.mktemp("prepared")
    prepare(PrepareConfig(input=synthetic_raw, output=root / "data", workflow_dir=root / "workflow",
                          negatives=50, seed=5, quiet=True))
    return root / "data"

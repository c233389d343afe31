"""Shared fixtures: small real datasets written by the tests, prepared with the real ETL."""
from __future__ import annotations

from pathlib import Path

import pytest

from etl.prepare import PrepareConfig, prepare
from etl.synthetic import generate

from .helpers import run_module


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path, monkeypatch):
    """Runs without an output flag write a run folder under ./runs: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


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


@pytest.fixture(scope="session")
def trained(prepared, tmp_path_factory) -> Path:
    """A small model trained one epoch on `prepared`: its best checkpoint."""
    ckpt = tmp_path_factory.mktemp("ckpt")
    result = run_module("training", "--data", prepared, "-e", "1", "-b", "4096", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", ckpt)
    assert result.returncode == 0, result.stderr[-2000:]
    return ckpt / "model.pth"


@pytest.fixture(scope="session")
def prepared_lists(tmp_path_factory, synthetic_raw) -> Path:
    """`synthetic_raw` in the lists layout (`--split users`): 40 validation and 40 test users."""
    root = tmp_path_factory.mktemp("lists")
    prepare(PrepareConfig(input=synthetic_raw, output=root / "data", min_rating=3.5, seed=5, split="users",
                          heldout_users=40, quiet=True))
    return root / "data"


@pytest.fixture(scope="session")
def trained_vae(prepared_lists, tmp_path_factory) -> Path:
    """A small Mult-VAE trained one epoch on `prepared_lists`: its best checkpoint."""
    ckpt = tmp_path_factory.mktemp("ckpt_vae")
    result = run_module("training", "--data", prepared_lists, "-e", "1", "-b", "64", "--layers", "32", "8",
                        "--checkpoint_dir", ckpt)
    assert result.returncode == 0, result.stderr[-2000:]
    return ckpt / "model.pth"


@pytest.fixture(scope="session")
def periods(tmp_path_factory, synthetic_raw) -> tuple[Path, Path]:
    """`synthetic_raw` cut in time: the older 70%, without users whose id is a multiple of 5 nor items whose
    id is a multiple of 7, and the newer 30%, where those users and items first appear."""
    import pandas as pd

    root = tmp_path_factory.mktemp("periods")
    ratings = pd.read_csv(synthetic_raw)
    cut = ratings["timestamp"].quantile(0.7)
    older = ratings[(ratings["timestamp"] <= cut) & (ratings["userId"] % 5 != 0) & (ratings["movieId"] % 7 != 0)]
    older.to_csv(root / "older.csv", index=False)
    ratings[ratings["timestamp"] > cut].to_csv(root / "newer.csv", index=False)
    return root / "older.csv", root / "newer.csv"


@pytest.fixture(scope="session")
def grown(tmp_path_factory, periods) -> tuple[Path, Path]:
    """(older, newer) DATA_DIRs (pairs): the older fitted (ratings >= 3.5 are positives), the newer prepared by
    growing the older's workflow."""
    root = tmp_path_factory.mktemp("grown")
    older, newer = periods
    prepare(PrepareConfig(input=older, output=root / "old", min_rating=3.5, negatives=20, quiet=True))
    prepare(PrepareConfig(input=newer, output=root / "new", workflow=root / "old" / "workflow", grow=True,
                          negatives=20, quiet=True))
    return root / "old", root / "new"

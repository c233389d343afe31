"""Full-catalogue accuracy on real given splits, end to end (`python -m bench --only full_ranking --split NAME=DIR`).

DIR holds a user's own split as raw files (`train.txt`/`test.txt`, optionally `validation.txt`, in the per-user
lines format, or `.csv`; e.g. written by `python -m bench.given_split`). For each: `etl prepare --test-input`,
then `python -m training --data D -k 20` with its defaults (the default run), then `python -m training.compare`
(every family with its defaults, EASE and TopPop, the pick made on validation), each timed end to end. Real data
is never committed and no test reads it: the folders are the user's.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .common import DATA, python, run_measured, save

K = 20


def _files(folder: Path) -> dict:
    found = {}
    for name in ("train", "test", "validation"):
        for suffix in ("txt", "csv", "parquet"):
            if (folder / f"{name}.{suffix}").exists():
                found[name] = folder / f"{name}.{suffix}"
                break
    if "train" not in found or "test" not in found:
        raise SystemExit(f"{folder}: expected train.txt and test.txt (or .csv/.parquet)")
    return found


def _say(message: str) -> None:
    print(f"[full_ranking] {message}", file=sys.stderr, flush=True)


def measure(name: str, folder: Path) -> dict:
    files, work = _files(Path(folder)), DATA / "full-ranking" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prepared = work / "data"
    argv = ["--input", files["train"], "--test-input", files["test"], "--output", prepared, "--quiet"]
    if "validation" in files:
        argv += ["--validation-input", files["validation"]]
    etl = run_measured(python("-m", "etl", "prepare", *argv), timeout=3600)
    stats = json.loads(etl["stdout"].strip().splitlines()[-1])
    _say(f"{name}: prepared in {etl['seconds']:.0f}s")
    run = run_measured(python("-m", "training", "--data", prepared, "-k", K, "--checkpoint_dir", work / "default"),
                       timeout=4 * 3600)
    summary = json.loads(run["stdout"].strip().splitlines()[-1])
    _say(f"{name}: the default run in {run['seconds']:.0f}s, test Recall@{K} {summary['best_recall']:.4f}")
    compared = run_measured(python("-m", "training.compare", "--data", prepared, "-k", K, 50, "--output",
                                   work / "compare"), timeout=6 * 3600)
    results = json.loads((work / "compare" / "results.json").read_text())
    _say(f"{name}: compare in {compared['seconds']:.0f}s")
    models = {model: {key: value for key, value in figures.items() if isinstance(value, (int, float, bool))}
              for model, figures in results["models"].items()}
    return {"name": name, "users": stats["users"], "items": stats["items"], "train_rows": stats["train_rows"],
            "test_rows": stats["test_rows"], "etl_seconds": etl["seconds"],
            "default_run": {"seconds": run["seconds"], "model": summary["model"], "settings": summary["settings"],
                            **{k: summary.get(k) for k in ("best_recall", "best_ndcg", "best_hr", "best_recall@50",
                                                            "best_valid_recall", "best_epoch", "toppop_recall",
                                                            "toppop_ndcg")}},
            "compare": {"seconds": compared["seconds"], "pick": results.get("pick"), "models": models}}


def run_splits(splits: dict, quick: bool = False) -> None:
    """splits: NAME -> folder of raw given-split files. Writes bench/results/full_ranking.json."""
    results = [measure(name, Path(folder)) for name, folder in splits.items()]
    save("full_ranking", {"quick": quick, "k": K, "data": results})


def run(quick: bool = False) -> None:
    raise SystemExit("full_ranking measures real data only: pass --split NAME=DIR (see bench/full_ranking.py)")

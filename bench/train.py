"""Training samples/s (fp32, AMP) at ml-1m and ml-20m table sizes beside a naive PyTorch loop,
and time-to-HR of the default settings on the synthetic ml-1m."""
from __future__ import annotations

import json

from .common import DATA, median, python, run_measured, save, synthetic

DLE_ARCH = ["-f", "64", "--layers", "256", "256", "128", "64"]
# name -> (rows, users, items): MovieLens-1M-like, and MovieLens-20M table sizes with fewer rows
# (throughput depends on table sizes and batch shape, not on how many rows an epoch has).
SIZES = {"ml-1m": (1_000_000, 6_040, 3_700), "ml-20m": (4_000_000, 138_000, 27_000)}


def prepared(name: str):
    rows, users, items = SIZES[name]
    target = DATA / f"prepared-{name}"
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", synthetic(rows, users, items), "--output", target,
                            "--workflow-dir", DATA / f"workflow-{name}", "--overwrite", "--quiet"))
    return target


def summary_of(result: dict) -> dict:
    return json.loads(result["stdout"].strip().splitlines()[-1])


def throughput(data, steps: int, extra=(), repeats: int = 1) -> dict:
    runs = [run_measured(python("-m", "training", "--data", data, "-e", "1", "--steps_per_epoch", steps, "-b", 65536,
                                "--no_eval", *DLE_ARCH, *extra)) for _ in range(repeats)]
    return {"samples_per_s": median(summary_of(r)["train_throughput"] for r in runs),
            "peak_rss_mib": median(r["peak_rss_mib"] for r in runs)}


def naive(data, steps: int) -> dict:
    result = run_measured(python("-m", "bench.naive_reference", "--data", data, "--steps", steps, "-b", 65536))
    payload = summary_of(result)
    return {"samples_per_s": payload["train_throughput"], "loader_share": payload["loader_share"],
            "peak_rss_mib": result["peak_rss_mib"]}


def time_to_hr(data, target: float) -> dict:
    """Default flags (what `make demo` runs): wall time until HR@10 first reaches `target`."""
    result = run_measured(python("-m", "training", "--data", data, "--log_path", DATA / "time-to-hr.jsonl"))
    history = [json.loads(line) for line in (DATA / "time-to-hr.jsonl").read_text().splitlines()]
    (DATA / "time-to-hr.jsonl").unlink()
    reached = next((h for h in history if h["hr"] >= target), None)
    summary = summary_of(result)
    return {"target_hr": target, "seconds_to_target": reached and reached["elapsed_seconds"],
            "epoch_reached": reached and reached["epoch"], "best_hr": summary["best_hr"],
            "toppop_hr": summary["toppop_hr"], "time_to_best": summary["time_to_best"],
            "wall_seconds": result["seconds"]}


def run(quick: bool) -> dict:
    steps, repeats = (8, 1) if quick else (20, 3)
    results = {}
    for name in SIZES:
        data = prepared(name)
        results[name] = {
            "fp32": throughput(data, steps, repeats=repeats),
            "amp": throughput(data, max(2, steps // 4), ["--amp"], repeats=1),
            "fp32_dropout": throughput(data, steps, ["--dropout", "0.5"], repeats=1),
            "naive_fp32": naive(data, max(2, steps // 2)),
        }
        results[name]["speedup_vs_naive"] = results[name]["fp32"]["samples_per_s"] / \
            results[name]["naive_fp32"]["samples_per_s"]
    results["time_to_hr"] = time_to_hr(prepared("ml-1m"), target=0.65)
    save("train", {"quick": quick, "batch_size": 65536, "architecture": " ".join(DLE_ARCH), "results": results})
    return results

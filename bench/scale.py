"""How cost grows with the work: ETL time and peak RSS against rows; training memory against rows."""
from __future__ import annotations

from .common import DATA, python, run_measured, save, synthetic
from .etl import SHAPES
from .train import DLE_ARCH, summary_of


def etl_point(rows: int) -> dict:
    users, items = SHAPES[rows]
    source = synthetic(rows, users, items, suffix="parquet")  # parquet: generating 100M CSV rows is slow
    target = DATA / f"scale-{rows}"
    result = run_measured(python("-m", "etl", "prepare", "--input", source, "--output", target, "--workflow-dir",
                                 DATA / f"scale-wf-{rows}", "--overwrite", "--quiet"))
    return {"rows": rows, "seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"], "data": target}


def training_point(data, steps: int) -> dict:
    result = run_measured(python("-m", "training", "--data", data, "-e", "1", "--steps_per_epoch", steps,
                                 "-b", 65536, "--no_eval", *DLE_ARCH))
    return {"samples_per_s": summary_of(result)["train_throughput"], "peak_rss_mib": result["peak_rss_mib"]}


def run(quick: bool) -> dict:
    sizes = [1_000_000, 5_000_000] if quick else [1_000_000, 10_000_000, 30_000_000, 100_000_000]
    etl = [etl_point(rows) for rows in sizes]
    base = etl[0]
    for point in etl:
        point["time_per_row_vs_smallest"] = (point["seconds"] / point["rows"]) / (base["seconds"] / base["rows"])
        point["rss_vs_smallest"] = point["peak_rss_mib"] / base["peak_rss_mib"]
    # Training memory against rows with the same (ml-1m) tables: should not grow with rows.
    training = []
    for rows in (1_000_000, 4_000_000):
        source = synthetic(rows, 6_040, 3_700)
        target = DATA / f"scale-train-{rows}"
        run_measured(python("-m", "etl", "prepare", "--input", source, "--output", target, "--workflow-dir",
                            DATA / f"scale-train-wf-{rows}", "--overwrite", "--quiet"))
        training.append({"rows": rows, "users": 6_040, "items": 3_700, **training_point(target, 6 if quick else 20)})
    for point in etl:
        point["data"] = str(point["data"])
    save("scale", {"quick": quick, "etl": etl, "training": training})
    return {"etl": etl, "training": training}

"""ETL throughput and peak memory: `etl prepare` (NVTabular on Dask) beside plain pandas."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .common import median, python, run_measured, save, synthetic

# rows -> (users, items), shaped like MovieLens releases of that size
SHAPES = {1_000_000: (6_040, 3_700), 5_000_000: (35_000, 8_000), 10_000_000: (70_000, 10_700),
          20_000_000: (138_000, 27_000), 30_000_000: (200_000, 30_000), 100_000_000: (660_000, 50_000)}


def measure_etl(rows: int, repeats: int) -> dict:
    users, items = SHAPES[rows]
    source = synthetic(rows, users, items)
    out = {"rows": rows, "users": users, "items": items}
    for name, argv in (
        ("nvtabular", lambda d: python("-m", "etl", "prepare", "--input", source, "--output", d / "out",
                                       "--workflow-dir", d / "wf", "--quiet")),
        ("pandas", lambda d: python("-m", "bench.pandas_reference", "--input", source, "--output", d / "out")),
    ):
        runs = []
        for _ in range(repeats):
            scratch = Path(tempfile.mkdtemp(prefix="bench-etl-"))
            try:
                runs.append(run_measured(argv(scratch)))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        seconds = median(r["seconds"] for r in runs)
        out[name] = {"seconds": seconds, "rows_per_s": rows / seconds,
                     "peak_rss_mib": median(r["peak_rss_mib"] for r in runs), "runs": len(runs)}
    out["time_ratio_vs_pandas"] = out["nvtabular"]["seconds"] / out["pandas"]["seconds"]
    return out


def run(quick: bool) -> dict:
    sizes, repeats = ([1_000_000, 5_000_000], 1) if quick else ([1_000_000, 10_000_000, 20_000_000], 3)
    results = [measure_etl(rows, repeats) for rows in sizes]
    save("etl", {"quick": quick, "results": results})
    return results

"""Which model for my data: `python -m training.compare` with its defaults (every model, default epochs) on
`make demo`'s data (`python -m etl synthetic`, then `etl prepare`), one row per model and K.

`python -m bench.compare --name NAME --data DATA_DIR` adds (or replaces) one data set's rows in
bench/results/compare.json and keeps the others, e.g. a real MovieLens folder prepared by `etl prepare`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .common import DATA, RESULTS, machine, python, run_measured

DEMO = "synthetic ml-1m (`make demo`'s data)"


def demo_data() -> Path:
    raw, target = DATA / "compare-demo" / "ratings.csv", DATA / "compare-demo" / "prepared"
    if not raw.exists():
        run_measured(python("-m", "etl", "synthetic", "--output", raw))
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", raw, "--output", target, "--overwrite", "--quiet"))
    return target


def measure(data: Path, quick: bool) -> dict:
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_measured(python("-m", "training.compare", "--data", data, "--output", Path(scratch) / "out",
                                     *(["-e", "2"] if quick else [])), timeout=4 * 3600)
        about = json.loads((Path(scratch) / "out" / "results.json").read_text())
    return {**about, "machine": machine(), "quick": quick, "wall_seconds": result["seconds"],
            "peak_rss_mib": result["peak_rss_mib"], "load_average": [load_before, round(os.getloadavg()[0], 2)]}


def add(name: str, measured: dict) -> Path:
    path = RESULTS / "compare.json"
    payload = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    payload["datasets"][name] = measured
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path


def run(quick: bool) -> dict:
    measured = measure(demo_data(), quick)
    add(DEMO, measured)
    return measured


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--name", required=True, help="the data set's row label, e.g. ml-100k")
    p.add_argument("--data", type=Path, required=True, help="a DATA_DIR prepared by etl prepare")
    p.add_argument("--quick", action="store_true", help="-e 2 instead of each family's default epochs")
    args = p.parse_args(argv)
    print(add(args.name, measure(args.data, args.quick)), file=sys.stderr)
    from .report import write

    print(f"wrote {write()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

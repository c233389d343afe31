"""Shared benchmark helpers: the machine, the commit, medians, and peak RSS of a command."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "data" / "bench"


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
    except OSError:
        commit = "unknown"
    from training.precision import cpu_has_native_bf16

    return {"cpu": model, "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "commit": commit or "unknown"}


def run_measured(argv: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a command; wall seconds and the peak RSS of its whole process tree (sampled every 50 ms)."""
    begin = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
        if time.perf_counter() - begin > timeout:
            proc.kill()
            raise TimeoutError(" ".join(argv))
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{err[-3000:]}")
    return {"seconds": time.perf_counter() - begin, "peak_rss_mib": peak / 2**20, "stdout": out}


def python(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


def median(values) -> float:
    return float(statistics.median(values))


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path


def synthetic(rows: int, users: int, items: int, suffix: str = "csv") -> Path:
    """Cached synthetic ratings of the given size (generation is not what we measure)."""
    path = DATA / f"synthetic-{rows}-{users}-{items}" / f"ratings.{suffix}"
    if not path.exists():
        from etl.synthetic import generate

        generate(path, users=users, items=items, rows=rows, seed=0)
    return path

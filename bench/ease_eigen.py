"""EASE's lambdas from one eigendecomposition against a Cholesky factor per lambda (`training/baselines.py`).

`python -m bench.ease_eigen --data DATA_DIR [--rank]`: on a pairs folder (a given split's validation carved as
`python -m training.compare` carves it, --seed 1), the Gram matrix of the train positives; seconds of B per
lambda by a Cholesky factor and its inverse (the code before) and by one ssyevr factorisation then products
(the code now), with --rank each lambda's validation Recall@20 both ways (compare's protocol).
`python -m bench.ease_eigen --scale N --solver ssyevr|torch.linalg.eigh|cholesky`: one factorisation of an
N x N Gram matrix like real data's (1.5 N users with 60 items each from a Zipf(1.1) popularity): seconds and the
peak memory above the Gram matrix (VmHWM, reset before; Linux), in items^2 float32 matrices.
One JSON line per measurement on stdout. Pin the threads (OMP_NUM_THREADS=1 ...) on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training import baselines
from training.sparse import Lists

LAMBDAS = baselines.LAMBDAS


def timed(f):
    wall, cpu = time.perf_counter(), time.process_time()
    result = f()
    return result, round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def peak_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def emit(record: dict) -> None:
    print(json.dumps({**record, "threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 2)}), flush=True)


def on_data(folder: Path, rank: bool) -> None:
    from contract.feature_spec import FeatureSpec
    from training.data.carve import carve_pairs, needs_carving
    from training.data.heldout_pairs import load_heldout_pairs
    from training.ranking import evaluate_at
    from training.runtime import start_runtime
    from training.tasks.base import Task

    spec = FeatureSpec.from_yaml(folder / "feature_spec.yaml")
    carved = carve_pairs(spec, 1) if needs_carving(spec) else None
    runtime = start_runtime()
    data = load_heldout_pairs(carved.spec if carved else spec, runtime, None, 1)
    if carved:
        carved.close()
    items = baselines.item_subset(data.counts, data.first_index, 10**9)
    position = torch.full((data.n_items,), -1)
    position[items] = torch.arange(len(items))
    g, wall, _ = timed(lambda: baselines.gram(data.train, position, len(items)))
    emit({"items": len(items), "gram_seconds": wall})
    candidates = Task.candidates(data.counts, data.first_index)

    def recall(weights, lam):
        model = baselines.EASE(items, weights, lam, data.n_items)
        return evaluate_at(model.score_users, data.splits["validation"], candidates, [20],
                           max(1, 2**20 // data.n_items), runtime)["recall@20"]

    for lam in LAMBDAS:
        b, wall, cpu = timed(lambda lam=lam: baselines.ease_weights(g, lam))
        emit({"path": "cholesky per lambda", "lambda": lam, "seconds": wall, "cpu_seconds": cpu,
              **({"validation_recall@20": recall(b, lam)} if rank else {})})
        del b
    spectrum, wall, cpu = timed(lambda: baselines.factorise(g.clone(), "ssyevr"))
    emit({"path": "one ssyevr factorisation", "seconds": wall, "cpu_seconds": cpu})
    for lam in LAMBDAS:
        b, wall, cpu = timed(lambda lam=lam: spectrum.weights(lam))
        emit({"path": "B from the factors", "lambda": lam, "seconds": wall, "cpu_seconds": cpu,
              "max_abs_difference_to_cholesky": float((b - baselines.ease_weights(g, lam)).abs().max()),
              **({"validation_recall@20": recall(b, lam)} if rank else {})})
        del b


def zipf_gram(n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, n + 1) ** 1.1
    p /= p.sum()
    rows = [np.unique(rng.choice(n, 60, p=p)) for _ in range(int(1.5 * n))]
    train = Lists(torch.tensor(np.cumsum([0] + [len(r) for r in rows])), torch.from_numpy(np.concatenate(rows)))
    return baselines.gram(train, torch.arange(n), n)


def at_scale(n: int, solver: str) -> None:
    g = zipf_gram(n)
    reset_peak()
    base = peak_bytes()
    if solver == "cholesky":
        _, wall, cpu = timed(lambda: baselines.ease_weights(g, 500.0))
    else:
        _, wall, cpu = timed(lambda: baselines.factorise(g, solver))
    emit({"items": n, "solver": solver, "seconds": wall, "cpu_seconds": cpu,
          "peak_matrices_above_gram": round((peak_bytes() - base) / (4 * n * n), 2)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ease_eigen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path)
    p.add_argument("--rank", action="store_true", help="each lambda's validation Recall@20 both ways")
    p.add_argument("--scale", type=int)
    p.add_argument("--solver", default="ssyevr", choices=("ssyevr", "torch.linalg.eigh", "cholesky"))
    args = p.parse_args(argv)
    if (args.data is None) == (args.scale is None):
        p.error("one of --data or --scale")
    if args.data is not None:
        on_data(args.data, args.rank)
    else:
        at_scale(args.scale, args.solver)
    return 0


if __name__ == "__main__":
    sys.exit(main())

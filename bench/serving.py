"""Serving latency and throughput: `python -m serving` (a real Triton on loopback, queried with
tritonclient.http) beside the same answers computed in-process by the server's own models
(`serving.models`, on `training.recommend`'s Recommender).

recommend at client batches of 1, 64 and 1,024 users (one request in flight), and 1 user with
8 in flight (what the dynamic batcher is for); score at 1 and 1,024 pairs. Synthetic ml-1m tables
(6,040 users x 3,700 items), the default architecture trained one epoch.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .common import DATA, ROOT, python, run_measured, save
from .train import prepared

K = 10
CASES = [  # (model, rows per request, requests in flight)
    ("recommend", 1, 1), ("recommend", 64, 1), ("recommend", 1024, 1), ("recommend", 1, 8),
    ("score", 1, 1), ("score", 1024, 1),
]


def checkpoint(data):
    path = DATA / "serving-checkpoint" / "model.pth"
    if not path.exists():
        run_measured(python("-m", "training", "--data", data, "-e", "1", "--checkpoint_dir", path.parent, "--no_eval"))
    return path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(latencies: list[float], wall: float, rows: int) -> dict:
    ms = np.array(latencies) * 1e3
    return {"requests": len(ms), "requests_per_s": len(ms) / wall, "rows_per_s": rows * len(ms) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _timed(calls: list, budget_s: float, rows: int, min_requests: int = 5) -> dict:
    """Each of `calls` run back to back from its own thread (requests in flight) for about `budget_s` seconds."""
    def worker(call):
        call()  # warm-up
        out, deadline = [], time.perf_counter() + budget_s
        while time.perf_counter() < deadline or len(out) < min_requests:
            begin = time.perf_counter()
            call()
            out.append(time.perf_counter() - begin)
        return out
    begin = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        latencies = [x for part in pool.map(worker, calls) for x in part]
    return _stats(latencies, time.perf_counter() - begin, rows)


def _inputs(http, model: str, users: list[str], items: list[str]):
    tensors = []
    for name, values in (("user_id", users), ("item_id", items))[: 1 if model == "recommend" else 2]:
        array = np.array(values, dtype=object)[:, None]
        tensors.append(http.InferInput(name, list(array.shape), "BYTES"))
        tensors[-1].set_data_from_numpy(array)
    return tensors


def run(quick: bool) -> dict:
    import tritonclient.http as http

    from serving.models import RecommendModel, ScoreModel
    from training.recommend import Recommender

    budget = 2.0 if quick else 10.0
    data = prepared("ml-1m")
    ckpt = checkpoint(data)
    rec = Recommender(ckpt, [data])
    in_process = {"recommend": RecommendModel(rec, K), "score": ScoreModel(rec)}
    raw_users = [str(u) for u in rec.user_vocab.to_numpy()]
    raw_items = [str(i) for i in rec.item_vocab.to_numpy()]
    rng = np.random.default_rng(0)

    def direct(model: str, users: list[str], items: list[str]):
        """What the server computes, called in-process: its models' answer to the same rows."""
        rows = [[u.encode() for u in users]] + ([[i.encode() for i in items]] if model == "score" else [])
        return in_process[model].answer(*rows)

    load_before = os.getloadavg()[0]
    port = _port()
    server = subprocess.Popen(python("-m", "serving", "--checkpoint", ckpt, "--data", data, "--topk", K,
                                     "--http-port", port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    started = time.perf_counter()
    results = []
    try:
        probe = http.InferenceServerClient(f"127.0.0.1:{port}")
        while not _ready(probe):
            if server.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError(f"python -m serving did not start:\n{server.stderr.read()[-2000:]}")
            time.sleep(0.2)
        startup_s = time.perf_counter() - started
        probe.close()
        for model, rows, in_flight in CASES:
            users = [raw_users[i] for i in rng.integers(0, len(raw_users), rows)]
            items = [raw_items[i] for i in rng.integers(0, len(raw_items), rows)]
            inputs = _inputs(http, model, users, items)
            clients = [http.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=120) for _ in range(in_flight)]
            served = _timed([lambda c=c, m=model, x=inputs: c.infer(m, x) for c in clients], budget, rows)
            for client in clients:
                client.close()
            baseline = (_timed([lambda m=model, u=users, i=items: direct(m, u, i)], budget, rows)
                        if in_flight == 1 else None)
            results.append({"model": model, "rows": rows, "in_flight": in_flight, "triton": served,
                            "in_process": baseline})
            print(f"[bench] serving {model} x{rows} ({in_flight} in flight): {served['requests_per_s']:.0f} req/s, "
                  f"p50 {served['p50_ms']:.1f} ms", file=sys.stderr, flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return save("serving", {"quick": quick, "topk": K, "budget_s": budget, "startup_s": startup_s,
                            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                            "users": len(raw_users), "items": len(raw_items), "results": results})


def _ready(client) -> bool:
    try:
        return client.is_model_ready("recommend") and client.is_model_ready("score")
    except Exception:  # noqa: BLE001 - not listening yet
        return False

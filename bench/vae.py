"""VAE-CF: `python -m training` on the lists layout (Mult-VAE, default flags) beside a plain PyTorch Mult-VAE
(`bench/vae_reference.py`) on the same lists split of the synthetic ml-1m: test NDCG@100 / Recall of the best
validation epoch, users/s."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .common import DATA, median, python, run_measured, save, synthetic

SIZE = (1_000_000, 6_040, 3_700)  # MovieLens-1M-like
MIN_RATING = 3.5


def prepared():
    target = DATA / "prepared-lists-ml-1m"
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", synthetic(*SIZE), "--output", target, "--split", "users",
                            "--min-rating", MIN_RATING, "--overwrite", "--quiet"))
    return target


def _summary(result: dict) -> dict:
    return json.loads(result["stdout"].strip().splitlines()[-1])


def _in_reference_terms(summary: dict) -> dict:
    """Our summary keys (best_ndcg at -k 100, toppop_*) under the names the reference prints (ndcg@100, pop_*)."""
    names = {"ndcg@100": "ndcg", "recall@20": "recall@20", "recall@50": "recall@50"}
    return {**summary, **{name: summary[f"best_{ours}"] for name, ours in names.items()},
            **{f"pop_{name}": summary[f"toppop_{ours}"] for name, ours in names.items()}}


def run(quick: bool) -> dict:
    data = prepared()
    epochs, seeds = (10, (0,)) if quick else (60, (0, 1))
    load_before = round(os.getloadavg()[0], 2)
    ours, plain = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as scratch:  # a log, so no default run folder with checkpoints
            # -b 500: the reference's batch (the default is sized to the data)
            result = run_measured(python("-m", "training", "--data", data, "-e", epochs, "-b", 500, "--seed", seed,
                                         "--log_path", Path(scratch) / "log.jsonl"))
        ours.append({**_in_reference_terms(_summary(result)), "wall_seconds": result["seconds"],
                     "peak_rss_mib": result["peak_rss_mib"]})
        result = run_measured(python("-m", "bench.vae_reference", "--data", data, "--epochs", epochs, "--seed", seed))
        plain.append({**_summary(result), "wall_seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"]})
    stats = json.loads((data / "stats.json").read_text())

    def summarise(runs):
        keys = ("ndcg@100", "recall@20", "recall@50", "train_throughput", "wall_seconds", "peak_rss_mib", "best_epoch")
        return {**{key: median(r[key] for r in runs) for key in keys}, "runs": runs}

    results = {"ours": summarise(ours), "plain": summarise(plain), "pop_ndcg@100": ours[0]["pop_ndcg@100"],
               "pop_recall@20": ours[0]["pop_recall@20"], "pop_recall@50": ours[0]["pop_recall@50"]}
    save("vae", {"quick": quick, "epochs": epochs, "seeds": list(seeds), "min_rating": MIN_RATING,
                 "train_users": stats["train_users"], "heldout_users": stats["heldout_users"],
                 "items": stats["train_items"],
                 "load_average": [load_before, round(os.getloadavg()[0], 2)],
                 "results": results})
    return results

"""Accuracy of the defaults and the alternatives on synthetic data at MovieLens sizes.

For each size: TopPop, the defaults (batch sized to the data), the old fixed -b 65536, a
smaller and a larger batch, two learning rates, L2, and --pretrain. The figures are test
HR@10/NDCG@10 of the epoch chosen on validation (sampled, 100 negatives), plus full-ranking
HR@10 of that model where measured. Accuracy does not depend on timing, so this may run
beside other work; its seconds do.
"""
from __future__ import annotations

import json

from .common import DATA, python, run_measured, save, synthetic

# name -> (rows, users, items), as MovieLens; full ranking is skipped at ml-20m size (hours on a CPU)
SIZES = {"ml-100k": (100_000, 943, 1_682), "ml-1m": (1_000_000, 6_040, 3_700), "ml-20m": (20_000_000, 138_000, 27_000)}
QUICK_SIZES = ("ml-100k", "ml-1m")
# name -> extra flags; "defaults" is what a user gets with none
CONFIGS = {
    "defaults": [],
    "-b 65536 (the old fixed default)": ["-b", "65536"],
    "batch / 4": ["--batch_scale", "0.25"],
    "batch x 4": ["--batch_scale", "4"],
    "-l 0.002": ["-l", "0.002"],
    "-l 0.01": ["-l", "0.01"],
    "--l2 1e-4": ["--l2", "1e-4"],
    "--l2 1e-5": ["--l2", "1e-5"],
    "--pretrain": ["--pretrain"],
}
QUICK_CONFIGS = ("defaults", "-b 65536 (the old fixed default)", "--l2 1e-4", "--pretrain")
# An epoch at ml-20m size takes minutes on a CPU: only the defaults and the old default run there.
LARGE_CONFIGS = ("defaults", "-b 65536 (the old fixed default)")


def prepared(name: str):
    rows, users, items = SIZES[name]
    target = DATA / f"accuracy-{name}"
    if not (target / "feature_spec.yaml").exists():
        run_measured(python("-m", "etl", "prepare", "--input", synthetic(rows, users, items), "--output", target,
                            "--overwrite", "--quiet"))
    return target


def default_batch(data) -> int:
    from contract.feature_spec import FeatureSpec
    from training.tasks.neumf import batch_size_for

    return batch_size_for(len(FeatureSpec.from_yaml(data).read("train", ["item_id"])), 4)


def train(data, flags: list[str], workdir, full_ranking: bool) -> dict:
    if "--batch_scale" in flags:  # relative to the default of this size
        scale = float(flags[flags.index("--batch_scale") + 1])
        flags = ["-b", str(int(default_batch(data) * scale))]
    protocol = ["--eval", "both"] if full_ranking else []
    argv = python("-m", "training", "--data", data, "--checkpoint_dir", workdir, "--overwrite", *protocol, *flags)
    result = run_measured(argv, timeout=6 * 3600)
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"flags": " ".join(flags) or "(none)", "seconds": result["seconds"], **{
        k: summary.get(k) for k in ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "toppop_hr", "toppop_ndcg",
                                    "full_hr", "full_ndcg", "toppop_full_hr")}}


def run(quick: bool = False, sizes=None) -> None:
    results = {}
    for size in sizes or (QUICK_SIZES if quick else SIZES):
        data = prepared(size)
        names = QUICK_CONFIGS if quick else LARGE_CONFIGS if size == "ml-20m" else tuple(CONFIGS)
        results[size] = {"default_batch": default_batch(data), "runs": {
            name: train(data, CONFIGS[name], DATA / f"accuracy-runs/{size}/{i}", size != "ml-20m")
            for i, name in enumerate(names)}}
        save("accuracy", {"quick": quick, "sizes": results})

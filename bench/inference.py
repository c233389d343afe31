"""Inference as DeepLearningExamples reports it: scoring samples/s at batch sizes 1k to 1M for the
default and DLE models, fp32 and bf16 (autocast); all-items scoring for a slice of users, pairwise
forward vs `score_grid`; and the wall time of `python -m training.recommend --all-users`.

Scoring runs in this process on the project's NeuMF (eval mode, inference_mode, random ids, the CPU
runtime's host memory settings). `recommend` runs as a user runs it, on a checkpoint of one training
step (timing does not depend on the weights): in full at ml-1m sizes; at ml-20m sizes it is timed
for 1 and for USERS_TIMED users and the whole run extrapolated from the difference.
"""
from __future__ import annotations

import contextlib
import os
import time

import torch

from contract.feature_spec import FeatureSpec
from training.host_memory import reuse_freed_memory
from training.tasks import build_model

from .common import DATA, python, run_measured, save
from .train import CONFIGS, flags, prepared

BATCHES = [1024, 16384, 262144, 1048576]
GRID_USERS = 64  # users per all-items scoring call, as recommend batches them
USERS_TIMED = 2000
PRECISIONS = (("fp32", False), ("bf16", True))


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _rate(fn, args: tuple, bf16: bool, units: int, budget_s: float) -> float:
    """units/s of fn(*args) (under bf16 autocast or not) after one warm-up call, repeated for ~budget_s."""
    calls, begin = -1, 0.0
    while calls < 1 or time.perf_counter() - begin < budget_s:
        with _autocast(bf16):
            fn(*args)
        calls += 1
        if calls == 0:
            begin = time.perf_counter()
    return calls * units / (time.perf_counter() - begin)


@torch.inference_mode()
def scoring(model, sizes: dict, batches: list[int], budget_s: float) -> list[dict]:
    rows = []
    for batch in batches:
        pairs = (torch.randint(0, sizes["users"], (batch,)), torch.randint(0, sizes["items"], (batch,)))
        rows.append({"batch": batch, **{name: _rate(model, pairs, bf16, batch, budget_s) for name, bf16 in PRECISIONS}})
    return rows


@torch.inference_mode()
def all_items(model, sizes: dict, budget_s: float) -> dict:
    """Pairs/s scoring GRID_USERS users against every item: pairwise forward vs score_grid."""
    users, items = torch.randint(0, sizes["users"], (GRID_USERS,)), torch.arange(sizes["items"])
    repeated = (users.repeat_interleave(len(items)), items.repeat(len(users)))
    pairs = GRID_USERS * len(items)
    return {name: {"pairwise": _rate(model, repeated, bf16, pairs, budget_s),
                   "score_grid": _rate(model.score_grid, (users, items), bf16, pairs, budget_s)}
            for name, bf16 in PRECISIONS}


def checkpoint_of(name: str, arch: dict) -> os.PathLike:
    """A checkpoint after one training step of this architecture on this data."""
    folder = DATA / f"inference-checkpoint-{name}"
    if not (folder / "model.pth").exists():
        run_measured(python("-m", "training", "--data", prepared(name), "-e", "1", "--steps_per_epoch", "1",
                            "--no_eval", *flags(arch), "--checkpoint_dir", folder, "--overwrite"))
    return folder / "model.pth"


def recommend_seconds(name: str, arch: dict, users: int | None) -> float:
    """Wall seconds of `training.recommend` for all users, or for raw user ids 1..users."""
    who = ["--all-users"] if users is None else ["--users", ",".join(str(u) for u in range(1, users + 1))]
    output = DATA / f"inference-recommendations-{name}.csv"
    output.unlink(missing_ok=True)
    result = run_measured(python("-m", "training.recommend", "--checkpoint", checkpoint_of(name, arch),
                                 "--data", prepared(name), *who, "--topk", "10", "--output", output))
    output.unlink()
    return result["seconds"]


def recommend_all(name: str, arch: dict, n_users: int, measure_all: bool) -> dict:
    if measure_all:
        return {"seconds": recommend_seconds(name, arch, None), "extrapolated": False}
    one, many = recommend_seconds(name, arch, 1), recommend_seconds(name, arch, USERS_TIMED)
    users_per_s = (USERS_TIMED - 1) / max(many - one, 1e-9)
    return {"seconds": one + n_users / users_per_s, "extrapolated": True, "users_timed": USERS_TIMED,
            "one_user_seconds": one, "users_per_s": users_per_s}


def run(quick: bool) -> dict:
    reuse_freed_memory()
    load_before = os.getloadavg()[0]
    budget = 0.5 if quick else 2.0
    results = []
    for label, (name, arch, _) in CONFIGS.items():
        sizes = FeatureSpec.from_yaml(prepared(name)).table_sizes
        model = build_model({"variant": "neumf", **arch}, sizes).eval()
        results.append({
            "config": label, "sizes": sizes,
            "scoring": scoring(model, sizes, BATCHES[:2] if quick else BATCHES, budget),
            "all_items": all_items(model, sizes, budget),
            "recommend_all_users": recommend_all(name, arch, sizes["users"], measure_all=name == "ml-1m"),
        })
    save("inference", {"quick": quick, "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                       "grid_users": GRID_USERS, "results": results})
    return results

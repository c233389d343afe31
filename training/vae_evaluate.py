"""Held-out evaluation of list models: fold in each user's fold-in list, rank the whole catalogue, compare the
top K with the target list (training/ranking.py); the popularity baseline on the same users; `--mode test`."""
from __future__ import annotations

import time

import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from . import checkpoint
from .data.lists import HeldOut, checked_item_counts, load_heldout
from .models import build_list_model
from .ranking import exclude, topk_sums
from .runtime import Runtime
from .vae_args import RECALL_AT


def lists_spec(path, required) -> FeatureSpec:
    spec = FeatureSpec.from_yaml(path, required)
    if not spec.is_lists:
        raise UserError(f"{spec.base_directory} holds the pairs layout (python -m training); Mult-VAE needs per-user "
                        "lists: `etl prepare --split users`")
    return spec


def candidates(counts: torch.Tensor, first_index: int) -> torch.Tensor:
    """Items that can be recommended: real items some training user has."""
    mask = counts > 0
    mask[:first_index] = False
    return mask


@torch.no_grad()
def evaluate_lists(score, heldout: HeldOut, allowed: torch.Tensor, k: int, batch_size: int, runtime: Runtime) -> dict:
    """Mean NDCG@k and Recall@20/50 of `score` (a CSR fold-in batch -> (users x items) scores) over all ranks."""
    begin = time.perf_counter()
    keys = [f"ndcg@{k}", *(f"recall@{r}" for r in RECALL_AT)]
    sums = dict.fromkeys(keys, 0.0)
    for fold_in, target in heldout.batches(batch_size):
        scores = exclude(score(fold_in).float(), fold_in, allowed)
        for key, value in topk_sums(scores, target, k, RECALL_AT).items():
            sums[key] += value.item()
    totals = runtime.sum(*(sums[key] for key in keys))
    seconds = time.perf_counter() - begin
    users = runtime.sum(float(len(heldout)))[0]
    return {**{key: total / heldout.total_users for key, total in zip(keys, totals)},
            "eval_seconds": seconds, "eval_throughput": users / max(seconds, 1e-9)}


def model_scores(model: torch.nn.Module, runtime: Runtime):
    def score(fold_in):
        model.eval()
        with runtime.autocast():
            return model(fold_in)[0]
    return score


def popularity_scores(counts: torch.Tensor):
    return lambda fold_in: counts.float().expand(fold_in.shape[0], -1).clone()


def evaluate_model(model, heldout, allowed, k, batch_size, runtime) -> dict:
    was_training = model.training
    result = evaluate_lists(model_scores(model, runtime), heldout, allowed, k, batch_size, runtime)
    model.train(was_training)
    return result


def evaluate_popularity(counts, heldout, allowed, k, batch_size, runtime) -> dict:
    result = evaluate_lists(popularity_scores(counts), heldout, allowed, k, batch_size, runtime)
    return {f"pop_{key}": value for key, value in result.items() if "@" in key}


def evaluate_checkpoint(args, runtime: Runtime) -> dict:
    """`--mode test`: the checkpoint's test figures and the popularity baseline on the same users."""
    spec = lists_spec(args.data / args.feature_spec_file, ("train", "test"))
    payload = checkpoint.load(args.load_checkpoint_path)
    checkpoint.check_fits(payload, args.load_checkpoint_path, spec.table_sizes)
    model = build_list_model(payload["meta"]["architecture"], spec.table_sizes).to(runtime.device)
    model.load_state_dict(payload["model"])
    counts = torch.from_numpy(checked_item_counts(spec)).to(runtime.device)
    allowed = candidates(counts, spec.first_index)
    test = load_heldout(spec, "test", runtime)
    result = evaluate_model(model, test, allowed, args.top_results, args.batch_size_validation, runtime)
    return {**{key: value for key, value in result.items() if key != "eval_seconds"},
            **evaluate_popularity(counts, test, allowed, args.top_results, args.batch_size_validation, runtime),
            "test_users": test.total_users, "checkpoint": str(args.load_checkpoint_path)}

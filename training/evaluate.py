"""Evaluation: score every test series with the model (or TopPop), reduce HR@K / NDCG@K over
ranks, and `--mode test` on a saved checkpoint."""
from __future__ import annotations

import time

import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from . import checkpoint
from .data.test_series import TestSeries, load_test_series
from .full_ranking import evaluate_full, load_ranking_task
from .metrics import hit_and_ndcg_sums, ranks
from .models import build_model
from .runtime import Runtime


def check_topk(k: int, spec: FeatureSpec) -> None:
    """HR@K over series of length L is 1.0 for every model when K >= L - 1 negatives + 1."""
    if k >= spec.samples_per_series:
        raise UserError(f"-k {k} must be smaller than the test series length {spec.samples_per_series} "
                        "(every model would score HR 1.0)")


def reduce_metrics(scores: torch.Tensor, test: TestSeries, k: int, runtime: Runtime) -> tuple[float, float]:
    hits, ndcg = hit_and_ndcg_sums(ranks(scores, test.items, test.positive_at), k)
    hits, ndcg = runtime.sum(hits.item(), ndcg.item())
    return hits / test.total_series, ndcg / test.total_series


@torch.no_grad()
def evaluate(model: torch.nn.Module, test: TestSeries, k: int, batch_size: int, runtime: Runtime) -> dict:
    begin = time.perf_counter()
    was_training = model.training
    model.eval()
    users, items = test.users.reshape(-1), test.items.reshape(-1)
    scores = torch.empty(users.shape, dtype=torch.float32, device=users.device)
    with runtime.autocast():
        for start in range(0, users.numel(), batch_size):
            end = start + batch_size
            scores[start:end] = model(users[start:end], items[start:end]).float()
    hr, ndcg = reduce_metrics(scores.view(test.items.shape), test, k, runtime)
    model.train(was_training)
    seconds = time.perf_counter() - begin
    samples = runtime.sum(float(users.numel()))[0]
    return {"hr": hr, "ndcg": ndcg, "eval_seconds": seconds, "eval_throughput": samples / max(seconds, 1e-9)}


def evaluate_toppop(popularity: torch.Tensor, test: TestSeries, k: int, runtime: Runtime) -> dict:
    """The trivial baseline: rank every candidate by how often it appears in train."""
    hr, ndcg = reduce_metrics(popularity[test.items].float(), test, k, runtime)
    return {"toppop_hr": hr, "toppop_ndcg": ndcg}


def evaluate_checkpoint(args, runtime: Runtime) -> dict:
    """`--mode test`: HR/NDCG of a saved model on the FeatureSpec's test series."""
    spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("test",))
    check_topk(args.topk, spec)
    payload = checkpoint.load(args.load_checkpoint_path)
    checkpoint.check_fits(payload, args.load_checkpoint_path, spec.table_sizes)
    model = build_model(payload["meta"]["architecture"], spec.table_sizes).to(runtime.device)
    model.load_state_dict(payload["model"])
    test = load_test_series(spec, runtime)
    summary = {"k": args.topk, "series": test.total_series, "checkpoint": str(args.load_checkpoint_path)}
    if args.eval != "full":
        result = evaluate(model, test, args.topk, args.valid_batch_size, runtime)
        summary.update(hr=result["hr"], ndcg=result["ndcg"], eval_throughput=result["eval_throughput"])
    if args.eval != "sampled":
        summary.update(evaluate_full(model, load_ranking_task(spec, runtime), args.topk, args.valid_batch_size, runtime))
    return summary

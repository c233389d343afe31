"""Full-ranking evaluation: each test positive ranked against every item its user does not have.

Sampled evaluation (DLE's protocol, `evaluate.py`) ranks the positive among 100 sampled
negatives; here it competes with the whole catalogue minus the reserved indices and the
user's known items (train, validation and below-the-rule interactions), ties against the
model. Users are split over ranks and scored in batches of whole item rows on the device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from contract.feature_spec import FeatureSpec

from .metrics import hit_and_ndcg_sums
from .runtime import Runtime

# Mappings whose pairs a user already has; test negatives are sampled, so only test positives count.
KNOWN_MAPPINGS = ("train", "validation", "known")


@dataclass
class RankingTask:
    users: torch.Tensor      # (n,) this rank's test users
    positives: torch.Tensor  # (n,) their test items
    known: np.ndarray        # sorted user * n_items + item keys of what this rank's users have
    n_items: int
    first_index: int
    total_users: int         # over all ranks


def load_ranking_task(spec: FeatureSpec, runtime: Runtime) -> RankingTask:
    test = spec.read("test")
    test = test[test[spec.label_feature] == 1]
    users = test[spec.user_feature].to_numpy(np.int64)
    positives = test[spec.item_feature].to_numpy(np.int64)
    share = np.array_split(np.arange(len(users)), runtime.world)[runtime.rank]
    n_items = spec.item_cardinality
    keys = []
    for mapping in KNOWN_MAPPINGS:
        if mapping in spec.source_spec:
            frame = spec.read(mapping)
            if mapping == "validation":
                frame = frame[frame[spec.label_feature] == 1]
            keys.append(frame[spec.user_feature].to_numpy(np.int64) * n_items + frame[spec.item_feature].to_numpy(np.int64))
    known = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    mine = np.isin(known // n_items, users[share])
    return RankingTask(torch.from_numpy(users[share]).to(runtime.device),
                       torch.from_numpy(positives[share]).to(runtime.device), known[mine], n_items,
                       spec.first_index, len(users))


def positive_ranks(scores: torch.Tensor, users: torch.Tensor, positives: torch.Tensor, task: RankingTask) -> torch.Tensor:
    """How many eligible items score >= each user's positive; `scores` is (users, n_items)."""
    scores = scores.float().clone()
    row = torch.arange(len(users), device=scores.device)
    positive = scores[row, positives].clone()
    scores[:, :task.first_index] = -torch.inf
    keys = users.cpu().numpy() * task.n_items
    lo, hi = np.searchsorted(task.known, keys), np.searchsorted(task.known, keys + task.n_items)
    rows = np.repeat(np.arange(len(keys)), hi - lo)
    cols = task.known[_ranges(lo, hi)]
    scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols % task.n_items).to(scores.device)] = -torch.inf
    scores[row, positives] = -torch.inf  # the positive is not its own competitor
    return (scores >= positive[:, None]).sum(dim=1)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenated np.arange(lo[i], hi[i]) without a Python loop."""
    lengths = hi - lo
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return starts + np.arange(lengths.sum())


def _metrics(score_rows, task: RankingTask, k: int, batch_users: int, runtime: Runtime, prefix: str) -> dict:
    hits = ndcg = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for start in range(0, len(task.users), batch_users):
        users, positives = task.users[start:start + batch_users], task.positives[start:start + batch_users]
        h, n = hit_and_ndcg_sums(positive_ranks(score_rows(users), users, positives, task), k)
        hits, ndcg = hits + h, ndcg + n
    hits, ndcg = runtime.sum(hits.item(), ndcg.item())
    # one target per user: Recall@K (hits / min(K, targets)) equals HR@K
    return {f"{prefix}hr": hits / task.total_users, f"{prefix}ndcg": ndcg / task.total_users,
            **({f"{prefix}recall": hits / task.total_users} if prefix == "full_" else {})}


@torch.no_grad()
def evaluate_full(model: torch.nn.Module, task: RankingTask, k: int, batch_size: int, runtime: Runtime) -> dict:
    """full_hr, full_ndcg, full_recall of `model`; `batch_size` bounds the pairs per forward pass."""
    begin = time.perf_counter()
    was_training = model.training
    model.eval()
    items = torch.arange(task.n_items, device=runtime.device)

    def score_rows(users):
        with runtime.autocast():
            return model.score_grid(users, items)

    result = _metrics(score_rows, task, k, max(1, batch_size // task.n_items), runtime, "full_")
    model.train(was_training)
    return {**result, "full_eval_seconds": time.perf_counter() - begin}


def evaluate_toppop_full(popularity: torch.Tensor, task: RankingTask, k: int, runtime: Runtime) -> dict:
    """The popularity baseline under the same protocol: every user gets the train counts as scores."""
    return _metrics(lambda users: popularity.float().expand(len(users), -1), task, k, 1024, runtime, "toppop_full_")

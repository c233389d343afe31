"""Loader rows/s: the project's TorchAsyncItr path (device transfer and on-device negatives
included) against PyTorch DataLoaders over a map-style Dataset of the same parquet."""
from __future__ import annotations

import time

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from contract.feature_spec import FeatureSpec
from training.data.pairs import TrainStream
from training.runtime import Runtime

from .common import save
from .train import prepared

NEGATIVES = 4


class Rows(Dataset):
    """Map-style: one positive per index, or a whole batch per list of indices (batch sampler)."""

    def __init__(self, spec: FeatureSpec):
        frame = spec.read("train")
        self.users = torch.from_numpy(frame[spec.user_feature].to_numpy())
        self.items = torch.from_numpy(frame[spec.item_feature].to_numpy())

    def __len__(self):
        return len(self.users)

    def __getitem__(self, index):
        return self.users[index], self.items[index]


def _negatives(users, items, n_items):
    negs = torch.randint(0, n_items, (NEGATIVES * len(items),))
    return torch.cat([users, users.repeat(NEGATIVES)]), torch.cat([items, negs])


def rows_per_s(batches, budget_s: float) -> float:
    rows, begin = 0, time.perf_counter()
    for users, _ in batches:
        rows += len(users)
        if time.perf_counter() - begin > budget_s:
            break
    return rows / (time.perf_counter() - begin)


def ours(spec, batch: int, budget_s: float) -> float:
    stream = TrainStream(spec, batch // (1 + NEGATIVES), NEGATIVES, Runtime(), seed=0)
    try:
        return rows_per_s(((i.view(-1), y) for _, i, y in stream.epoch(0)), budget_s)
    finally:
        stream.close()


def dataloader(spec, data: Rows, batch: int, budget_s: float, per_item: bool) -> float:
    positives = batch // (1 + NEGATIVES)
    if per_item:
        loader = DataLoader(data, batch_size=positives, shuffle=True)
    else:  # one __getitem__ per batch of indices, no per-row collation
        sampler = BatchSampler(RandomSampler(data), positives, drop_last=False)
        loader = DataLoader(data, sampler=sampler, batch_size=None)
    return rows_per_s((_negatives(u, i, spec.item_cardinality) for u, i in loader), budget_s)


def run(quick: bool) -> list:
    spec = FeatureSpec.from_yaml(prepared("ml-20m"))
    data = Rows(spec)
    batches = [4096, 65536] if quick else [4096, 65536, 262144, 1048576]
    budget = 3.0 if quick else 8.0
    results = []
    for batch in batches:
        row = {"batch": batch, "ours": ours(spec, batch, budget),
               "batch_sampler": dataloader(spec, data, batch, budget, per_item=False),
               "per_item": dataloader(spec, data, batch, min(budget, 4.0), per_item=True)}
        row["speedup_vs_per_item"] = row["ours"] / row["per_item"]
        results.append(row)
    save("loader", {"quick": quick, "negatives": NEGATIVES, "results": results})
    return results

"""Loader rows/s: the project's TorchAsyncItr path (device transfer and on-device negatives
included) against PyTorch DataLoaders over a map-style Dataset of the same parquet."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from contract.feature_spec import FeatureSpec
from training.data.pairs import TrainStream
from training.models.neumf import NeuMF
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
        return rows_per_s(((u, i) for u, i, _ in stream.epoch(0)), budget_s)
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


def step_seconds(spec, batch: int, steps: int = 3) -> float:
    """One fp32 training step of the DLE architecture at this batch size, for the loader's share."""
    model = NeuMF(spec.user_cardinality, spec.item_cardinality, 64, (256, 256, 128, 64), 0.0)
    opt = torch.optim.Adam(model.parameters())
    users = torch.randint(0, spec.user_cardinality, (batch,))
    items = torch.randint(0, spec.item_cardinality, (batch,))
    labels = torch.rand(batch).round()
    times = []
    for _ in range(steps):
        begin = time.perf_counter()
        torch.nn.functional.binary_cross_entropy_with_logits(model(users, items), labels).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


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
        row["loader_share_of_step"] = (batch / row["ours"]) / (batch / row["ours"] + step_seconds(spec, batch))
        results.append(row)
    save("loader", {"quick": quick, "negatives": NEGATIVES, "results": results})
    return results

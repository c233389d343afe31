"""What a user would otherwise write: a map-style Dataset over the train parquet, PyTorch's
DataLoader with default collation, and negatives drawn on the CPU per sample."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from contract.feature_spec import FeatureSpec
from training.models.neumf import NeuMF


class Positives(Dataset):
    def __init__(self, spec: FeatureSpec, negatives: int):
        frame = spec.read("train")
        self.users = frame[spec.user_feature].to_numpy()
        self.items = frame[spec.item_feature].to_numpy()
        self.negatives, self.n_items = negatives, spec.item_cardinality

    def __len__(self):
        return len(self.users)

    def __getitem__(self, i):
        negs = np.random.randint(0, self.n_items, self.negatives)
        users = np.full(1 + self.negatives, self.users[i])
        items = np.r_[self.items[i], negs]
        labels = np.r_[1.0, np.zeros(self.negatives)].astype(np.float32)
        return torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("-b", "--batch_size", type=int, default=65536)
    p.add_argument("-n", "--negatives", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("-f", "--factors", type=int, default=64)
    p.add_argument("--layers", type=int, nargs="+", default=[256, 256, 128, 64])
    args = p.parse_args(argv)
    spec = FeatureSpec.from_yaml(args.data)
    data = Positives(spec, args.negatives)
    loader = DataLoader(data, batch_size=args.batch_size // (1 + args.negatives), shuffle=True)
    model = NeuMF(spec.user_cardinality, spec.item_cardinality, args.factors, args.layers, 0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    samples, begin, load_seconds = 0, time.perf_counter(), 0.0
    batches = iter(loader)
    for _ in range(args.steps):
        t = time.perf_counter()
        users, items, labels = (x.reshape(-1) for x in next(batches))
        load_seconds += time.perf_counter() - t
        loss = loss_fn(model(users, items), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        samples += len(labels)
    seconds = time.perf_counter() - begin
    return {"train_throughput": samples / seconds, "loader_share": load_seconds / seconds, "steps": args.steps}


if __name__ == "__main__":
    print(json.dumps(main()))

"""The reference for training throughput: a bare in-memory PyTorch NeuMF loop, written here and not
with the project's training code, as a user would write it from DeepLearningExamples' NCF.

No loader and no files: uniform random (user, item) ids already in memory (each user with one
positive and four negatives, as in training), NeuMF as DLE writes it (four embedding tables, `cat`,
Linear+ReLU layers, final Linear over both branches), BCE on the logits, fused Adam, bf16 autocast
under --amp. Steps are timed after one warm-up step.

python -m bench.bare_loop --users 138000 --items 27000 -b 65536 -f 64 --layers 256 256 128 64 [--amp]

--project-model runs the same loop with the project's NeuMF (training/models/neumf.py), batches in
the layout TrainStream yields (users (P,), items (5, P)) and the host memory settings
(training/host_memory.py): the project's step on in-memory ids, which end-to-end training is
compared with to price its data path.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

NEGATIVES = 4


class PlainNeuMF(nn.Module):
    def __init__(self, users: int, items: int, factors: int, layers: list[int]):
        super().__init__()
        self.mf_user, self.mf_item = nn.Embedding(users, factors), nn.Embedding(items, factors)
        self.mlp_user, self.mlp_item = nn.Embedding(users, layers[0] // 2), nn.Embedding(items, layers[0] // 2)
        self.mlp = nn.Sequential(*(m for a, b in zip(layers[:-1], layers[1:]) for m in (nn.Linear(a, b), nn.ReLU())))
        self.final = nn.Linear(factors + layers[-1], 1)
        for table in (self.mf_user, self.mf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(table.weight, 0.0, 0.01)

    def forward(self, users, items):
        gmf = self.mf_user(users) * self.mf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=-1))
        return self.final(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("-b", "--batch_size", type=int, default=65536)
    p.add_argument("-f", "--factors", type=int, default=32)
    p.add_argument("--layers", type=int, nargs="+", default=[128, 64, 32])
    p.add_argument("-l", "--learning_rate", type=float, default=0.005)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--project-model", action="store_true", help="the project's NeuMF instead of the plain one")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    if args.project_model:
        from training.host_memory import reuse_freed_memory
        from training.models.neumf import NeuMF

        reuse_freed_memory()  # as training's runtime does on CPU
        model = NeuMF(args.users, args.items, args.factors, args.layers, dropout=0.0)
    else:
        model = PlainNeuMF(args.users, args.items, args.factors, args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, fused=True)
    tiles, positives = 1 + NEGATIVES, args.batch_size // (1 + NEGATIVES)
    batches = []
    for _ in range(4):  # a positive and NEGATIVES negatives per user, as training samples them
        users, items = torch.randint(0, args.users, (positives,)), torch.randint(0, args.items, (tiles, positives))
        labels = torch.zeros(tiles, positives)
        labels[0] = 1
        # the project's model takes the stream's layout, (P,) x (T, P); the plain one flat pairs
        batches.append((users, items, labels) if args.project_model else
                       (users.repeat(tiles), items.reshape(-1), labels.reshape(-1)))
    def step(users, items, labels):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
            logits = model(users, items)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*batches[0])  # warm-up: allocations, oneDNN kernel selection
    begin = time.perf_counter()
    for i in range(args.steps):
        step(*batches[i % len(batches)])
    seconds = time.perf_counter() - begin
    return {"train_throughput": args.steps * tiles * positives / seconds, "steps": args.steps, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(main()))

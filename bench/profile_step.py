"""Where one training step spends its time: forward / backward / optimizer, and the top ops.

python -m bench.profile_step [--users 138000 --items 27000 -b 65536 --amp]
"""
from __future__ import annotations

import argparse
import time

import torch

from training.host_memory import reuse_freed_memory
from training.models.neumf import NeuMF
from training.optim import adam


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=138_000)
    p.add_argument("--items", type=int, default=27_000)
    p.add_argument("-b", "--batch", type=int, default=65536)
    p.add_argument("-f", "--factors", type=int, default=64)
    p.add_argument("--layers", type=int, nargs="+", default=[256, 256, 128, 64])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    reuse_freed_memory()  # as training's CPU runtime does
    model = NeuMF(args.users, args.items, args.factors, args.layers, args.dropout)
    optimizer = adam(model.parameters(), 1e-3)
    # the layout TrainStream yields: a user per column, its positive and 4 negatives down the column
    users = torch.randint(0, args.users, (args.batch // 5,))
    items = torch.randint(0, args.items, (5, args.batch // 5))
    labels = torch.zeros(5, args.batch // 5)
    labels[0] = 1
    phases = {"forward": [], "backward": [], "optimizer": []}

    def step():
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(users, items).float(), labels)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    step()  # warm-up
    for _ in range(args.steps):
        for name, seconds in zip(phases, step()):
            phases[name].append(seconds)
    total = sum(min(v) for v in phases.values())
    print(f"batch {args.batch:,}  tables {args.users:,}/{args.items:,}  amp={args.amp} dropout={args.dropout}")
    for name, values in phases.items():
        print(f"  {name:<9} {min(values) * 1e3:8.1f} ms  ({100 * min(values) / total:4.1f}%)")
    print(f"  => {labels.numel() / total / 1e3:,.0f}k samples/s (best of {args.steps})")
    with torch.profiler.profile() as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()

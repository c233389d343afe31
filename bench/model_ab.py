"""NeuMF as committed at REV against the working tree's, the same in-memory training step, interleaved:
what a change to training/models/neumf.py did to samples/s, apart from the data path.

python -m bench.model_ab --rev 89a6a7f [--repeats 3] [--tiled]

--tiled feeds the working tree's model batches as TrainStream yields them since 3c18301: users (P,)
with items and labels (1 + 4 negatives, P); the model at REV gets the same samples as flat pairs.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import time

import torch

from training.models.neumf import NeuMF
from training.optim import adam

from .common import ROOT
from .train import DEFAULT_ARCH, DLE_ARCH

NEGATIVES = 4

# label -> (users, items, architecture, batch, steps)
CASES = {"default model, ml-1m tables": (6043, 3703, DEFAULT_ARCH, 65535, 20),
         "DLE architecture, ml-20m tables": (138003, 27003, DLE_ARCH, 65536, 8)}


def model_class_at(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:training/models/neumf.py"], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(f"neumf_{rev}", loader=None))
    exec(compile(source, f"{rev}:training/models/neumf.py", "exec"), module.__dict__)
    return module.NeuMF


def samples_per_s(model_class, users: int, items: int, arch: dict, batch: int, steps: int, bf16: bool,
                  tiled: bool = False) -> float:
    torch.manual_seed(0)
    model = model_class(users, items, arch["factors"], arch["layers"], 0.0)
    optimizer = adam(model.parameters(), 1e-3)
    tiles, positives = 1 + NEGATIVES, batch // (1 + NEGATIVES)
    batches = []
    for _ in range(3):
        u, i = torch.randint(0, users, (positives,)), torch.randint(0, items, (tiles, positives))
        y = torch.zeros(tiles, positives)
        y[0] = 1
        batches.append((u, i, y) if tiled else (u.repeat(tiles), i.reshape(-1), y.reshape(-1)))

    def step(u, i, y):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(u, i).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*batches[0])
    begin = time.perf_counter()
    for k in range(steps):
        step(*batches[k % len(batches)])
    return tiles * positives * steps / (time.perf_counter() - begin)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="git revision of the model to compare with")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiled", action="store_true", help="the working tree's model gets (P,) x (T, P) batches")
    args = p.parse_args(argv)
    before = model_class_at(args.rev)
    for label, (users, items, arch, batch, steps) in CASES.items():
        for bf16 in (False, True):
            runs = {"before": [], "after": []}
            for _ in range(args.repeats):
                runs["before"].append(samples_per_s(before, users, items, arch, batch, steps, bf16))
                runs["after"].append(samples_per_s(NeuMF, users, items, arch, batch, steps, bf16, args.tiled))
            b, a = (sorted(v)[len(v) // 2] for v in (runs["before"], runs["after"]))
            print(f"{label}, {'bf16' if bf16 else 'fp32'}: {args.rev} {b / 1e3:,.0f}k, now {a / 1e3:,.0f}k "
                  f"samples/s ({a / b:.2f}x)", flush=True)


if __name__ == "__main__":
    main()

"""Defaults that follow the data: a batch size giving about the same number of steps per epoch
at every dataset size.

A fixed -b 65536 suits ml-1m (75 steps per epoch) but leaves ml-100k 8 steps per epoch, too few
to learn in 10 epochs, and wastes ml-20m's parallelism. Scaling the batch with the data keeps
the number of updates per epoch, and with it the meaning of -e and -l, roughly constant; the
bounds are DLE's ml-20m batch (2**20) and a floor where per-step overhead would dominate.
Evidence: bench/accuracy.py (BENCHMARKS.md).
"""
from __future__ import annotations

import math

STEPS_PER_EPOCH = 64
MIN_BATCH, MAX_BATCH = 2**10, 2**20


def batch_size_for(train_positives: int, negatives: int) -> int:
    """Samples per step (negatives included): the power of two nearest to one epoch / STEPS_PER_EPOCH."""
    per_step = max(train_positives * (1 + negatives) / STEPS_PER_EPOCH, 1.0)
    return int(min(MAX_BATCH, max(MIN_BATCH, 2 ** round(math.log2(per_step)))))

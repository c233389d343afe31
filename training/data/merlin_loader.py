"""What both streams (TorchAsyncItr pairs, merlin.dataloader lists) do with the Merlin loader each epoch:
the partition order, the loader's thread setting, and the same number of steps on every rank."""
from __future__ import annotations

import numpy as np

from ..runtime import Runtime
from ..seeds import epoch_seed

# How long the loader's thread waits for room in its queue before it checks for stop() again.
PUT_WAIT_S = 0.05


def epoch_dataset(files: list[str], seed: int, epoch: int, runtime: Runtime):
    """The train files as an NVTabular Dataset, partitions permuted with a seed all ranks share (the
    loader itself never reorders partitions between epochs)."""
    import nvtabular as nvt

    order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(files))
    return nvt.Dataset([files[i] for i in order], engine="parquet", cpu=runtime.nvtabular_cpu)


def without_busy_wait(loader):
    """The loader's thread fills a one-chunk queue with put(timeout=1e-6) in a loop, so while training
    consumes a chunk it spins, holding the GIL and a core the training step's threads need (on 2 cores
    it cost a third of end-to-end throughput). A longer timeout still wakes as soon as a slot frees;
    it only delays noticing stop() by PUT_WAIT_S."""
    loader._buff.put_wait = PUT_WAIT_S
    return loader


def equal_steps(loader, seed: int, epoch: int, runtime: Runtime, max_steps: int | None = None):
    """Yield the loader's (features, labels) for as many steps as the rank with the longest shard has
    (a shorter shard restarts), so DDP never waits on a finished rank; at most max_steps."""
    steps = min(runtime.max_int(len(loader)), max_steps or 2**62)
    np.random.seed(epoch_seed(seed, epoch, runtime.rank) % 2**32)  # the loader's row shuffle
    done = 0
    try:
        while done < steps:
            for batch in loader:
                yield batch
                done += 1
                if done == steps:
                    break
    finally:
        loader.stop()

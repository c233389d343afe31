"""One setting every stream gives the Merlin loader (TorchAsyncItr and merlin.dataloader's Loader alike)."""
from __future__ import annotations

# How long the loader's thread waits for room in its queue before it checks for stop() again.
PUT_WAIT_S = 0.05


def without_busy_wait(loader):
    """The loader's thread fills a one-chunk queue with put(timeout=1e-6) in a loop, so while training
    consumes a chunk it spins, holding the GIL and a core the training step's threads need (on 2 cores
    it cost a third of end-to-end throughput). A longer timeout still wakes as soon as a slot frees;
    it only delays noticing stop() by PUT_WAIT_S."""
    loader._buff.put_wait = PUT_WAIT_S
    return loader

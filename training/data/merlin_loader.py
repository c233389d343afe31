"""What both streams (TorchAsyncItr pairs, merlin.dataloader lists) do with the Merlin loader each epoch:
the partition order, the row order, the loader's thread setting, and the same number of steps on every rank.

Nothing here touches process-wide state: the row order comes from the loader's own generator, not the global
numpy RNG, and the fast list flatten is a method of the loader, not a patch of merlin.core.dispatch. Every
private name of the Merlin loader that this code sets or overrides is listed in LOADER_INTERNALS.
"""
from __future__ import annotations

import functools
import shutil

import numpy as np
import pandas as pd

from contract.atomic import scratch_dir
from contract.errors import UserError

from ..runtime import Runtime
from ..seeds import epoch_seed

# How long the loader's thread waits for room in its queue before it checks for stop() again.
PUT_WAIT_S = 0.05

# The Merlin loader's private names that this module sets or overrides, and why. Read in
# merlin/dataloader/loader_base.py and nvtabular/loader/torch.py of merlin-dataloader and nvtabular MERLIN_PIN
# (requirements/cpu.txt); check each again when the pin moves (tests/training/test_merlin_loader.py fails on
# another installed version until MERLIN_PIN is updated). Nothing else in training/ reaches into the loader.
MERLIN_PIN = "23.8.0"
LOADER_INTERNALS = {
    "_buff.put_wait": "set (_configure): ChunkQueue.put polls its full one-chunk queue with put(timeout=1e-6), "
                      "spinning on the GIL and a core while the training step consumes a chunk",
    "device": "set (_configure) on TorchAsyncItr: its __init__ drops its device argument, which would build "
              "every rank's batches on GPU 0 (merlin's Loader keeps the argument: the same value, set again)",
    "make_tensors": "overridden (_OwnRowOrder): ChunkQueue.chunk_logic hands it each chunk (and the last spill); "
                    "the rows are permuted there by the loader's own generator instead of shuffle=True",
    "_convert_df_to_tensors": "overridden (_OwnRowOrder): pandas list columns become (values, offsets) with one "
                              "np.concatenate instead of merlin.core.dispatch.flatten_list_column_values",
}


# Train data the loader cannot stream as it is (csv, features over several chunks, fewer files than ranks)
# is rewritten once into this many parquet parts (or one per rank), removed when the stream closes.
SCRATCH_PARTS = 8


class ScratchParts:
    """A pyarrow table written as parquet parts in a temporary folder, enough for every rank to get a share."""

    def __init__(self, table, runtime: Runtime, unit: str):
        import pyarrow.parquet as pq

        parts = min(max(SCRATCH_PARTS, runtime.world), table.num_rows)
        if parts < runtime.world:
            raise UserError(f"the train data has {table.num_rows} {unit}, fewer than the {runtime.world} ranks")
        self.folder = scratch_dir("train-parts")
        self.files = []
        for i, rows in enumerate(np.array_split(np.arange(table.num_rows), parts)):
            self.files.append(str(self.folder / f"part_{i:05d}.parquet"))
            pq.write_table(table.slice(int(rows[0]), len(rows)), self.files[-1])

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def epoch_dataset(files: list[str], seed: int, epoch: int, runtime: Runtime):
    """The train files as an NVTabular Dataset, partitions permuted with a seed all ranks share (the
    loader itself never reorders partitions between epochs)."""
    import nvtabular as nvt

    order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(files))
    return nvt.Dataset([files[i] for i in order], engine="parquet", cpu=runtime.nvtabular_cpu)


def epoch_loader(loader_class, dataset, batch_size: int, seed: int, epoch: int, runtime: Runtime, **columns):
    """`loader_class` (nvtabular's TorchAsyncItr or merlin.dataloader's torch Loader) over this rank's share of
    `dataset`, rows shuffled inside each chunk in an order fixed by (seed, epoch, rank), batches on the device.

    Not shuffle=True: the loader then reseeds the process-wide numpy (on GPU cupy) RNG from seed_fn in every
    __iter__ and its thread draws the row order from it (DataFrame.sample), so the order depended on whatever
    else used that RNG meanwhile; its partition shuffle in the same call has no effect (the chunk queue
    already holds the partition list)."""
    device = runtime.device.index if runtime.device.type == "cuda" else "cpu"
    loader = _own_row_order(loader_class)(dataset, batch_size=batch_size, shuffle=False, device=device,
                                          global_size=runtime.world, global_rank=runtime.rank, **columns)
    return _configure(loader, np.random.default_rng(epoch_seed(seed, epoch, runtime.rank)), runtime)


def _configure(loader, rows: np.random.Generator, runtime: Runtime):
    """The one place that sets attributes on a Merlin loader (see LOADER_INTERNALS)."""
    loader.rows = rows  # our own attribute: _OwnRowOrder.make_tensors draws from it
    # The thread fills a one-chunk queue with put(timeout=1e-6) in a loop, so while training consumes a chunk it
    # spins, holding the GIL and a core the training step's threads need (on 2 cores it cost a third of
    # end-to-end throughput). A longer timeout still wakes as soon as a slot frees; it only delays noticing
    # stop() by PUT_WAIT_S.
    loader._buff.put_wait = PUT_WAIT_S
    if runtime.device.type == "cuda":
        loader.device = runtime.device.index  # TorchAsyncItr drops its device argument
    return loader


class _OwnRowOrder:
    """Mixed into a Merlin loader class (_own_row_order): rows permuted by the loader's `rows` generator, and
    pandas list columns flattened with one np.concatenate."""

    rows: np.random.Generator

    def make_tensors(self, gdf, use_row_lengths=False):
        # Runs in the loader's one thread, chunk after chunk, so the draws from `rows` come in a fixed order.
        if len(gdf) > 1:
            gdf = gdf.take(self.rows.permutation(len(gdf))).reset_index(drop=True)
        return super().make_tensors(gdf, use_row_lengths)

    def _convert_df_to_tensors(self, gdf):
        """On CPU Merlin flattens a list column with `pd.Series(itertools.chain(*s))`, a Python step per item
        (~1 us): at ml-1m size the lists loader then fed ~10k users/s while holding the GIL the training step
        needs. Same values, dtype and offsets for ragged pandas columns of 1-D arrays; anything else (scalar
        columns, cudf) goes to Merlin's own conversion."""
        if not (isinstance(gdf, pd.DataFrame) and len(gdf) and len(gdf.columns)
                and all(_ragged_arrays(gdf[name]) and self.input_schema[name].shape.is_ragged for name in gdf.columns)):
            return super()._convert_df_to_tensors(gdf)
        out = {}
        for name in gdf.columns:
            rows = gdf[name].to_numpy()
            lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            out[name] = np.concatenate(rows), np.concatenate([[0], np.cumsum(lengths)])
        return out


def _ragged_arrays(column: pd.Series) -> bool:
    return column.dtype == object and isinstance(column.iloc[0], np.ndarray) and column.iloc[0].ndim == 1


@functools.cache
def _own_row_order(loader_class: type) -> type:
    return type(loader_class.__name__, (_OwnRowOrder, loader_class), {})


def equal_steps(loader, runtime: Runtime, max_steps: int | None = None):
    """Yield the loader's (features, labels) for as many steps as the rank with the longest shard has
    (a shorter shard restarts, in a new row order), so DDP never waits on a finished rank; at most max_steps."""
    steps = min(runtime.max_int(len(loader)), max_steps or 2**62)
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

"""The lists layout: users' item lists streamed by the Merlin loader into CSR batches on the device, and the
held-out users' fold-in and target lists (item counts over the training lists: popularity.py).

The loader returns a list column as `NAME__values` + `NAME__offsets`: exactly the column indices and
row pointers of a CSR matrix, so a batch of users becomes a (users x items) torch.sparse_csr_tensor with
no dense intermediate.
"""
from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.chunks import read_parquet_lists
from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from ..runtime import Runtime
from .merlin_loader import epoch_dataset, epoch_loader, equal_steps
from .popularity import checked_item_counts as checked_item_counts  # the name other modules import from here

# A CSR batch is built every step; torch warns once per process that CSR support is "beta".
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
MATERIALISED_PARTS = 8  # train lists in fewer files than ranks are rewritten into this many (or one per rank)


def multi_hot(offsets: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """A (rows x n_items) CSR tensor of ones from ragged lists (offsets, items); items sorted within each row."""
    rows = torch.repeat_interleave(torch.arange(len(offsets) - 1, device=items.device), offsets.diff())
    order = torch.argsort(rows * n_items + items)
    return torch.sparse_csr_tensor(offsets.long(), items[order].long(), torch.ones(len(items), device=items.device),
                                   size=(len(offsets) - 1, n_items), check_invariants=False)


def _chunk_with(spec: FeatureSpec, mapping: str, features) -> dict:
    chunk = spec.single_chunk(mapping, features)
    if chunk is None:
        raise UserError(f"source_spec.{mapping}: the lists layout needs {', '.join(features)} in one parquet chunk")
    return chunk


def _read_lists(spec: FeatureSpec, mapping: str, features) -> dict:
    """Every file of a mapping's chunk: numpy columns, list columns as (offsets, values), ids checked."""
    chunk = _chunk_with(spec, mapping, features)
    parts = [read_parquet_lists(path, features) for path in chunk["files"]]
    out = {}
    for name in features:
        if spec.is_multivalued(name):
            offsets, values = [np.zeros(1, np.int64)], []
            for part in parts:
                o, v = part[name]
                offsets.append(o[1:] + offsets[-1][-1])
                values.append(v)
            out[name] = (np.concatenate(offsets), np.concatenate(values) if values else np.zeros(0, np.int64))
            spec.check_feature_ids(out[name][1], name, mapping)
        else:
            out[name] = np.concatenate([part[name] for part in parts]).astype(np.int64)
    return out


class ListStream:
    """Training users through merlin.dataloader's torch Loader, as CSR multi-hot batches on the device.

    As the pairs stream: each epoch permutes the partition files with a seed shared by all ranks, the
    loader shards them by rank, and every rank runs the same number of steps (a shorter shard restarts),
    so DDP never waits on a finished rank.
    """

    def __init__(self, spec: FeatureSpec, users_per_rank: int, runtime: Runtime, seed: int):
        self.item, self.n_items = spec.item_feature, spec.item_cardinality
        self.users_per_rank, self.runtime, self.seed = users_per_rank, runtime, seed
        self._scratch = None
        self.files = _chunk_with(spec, "train", [spec.user_feature, spec.item_feature])["files"]
        if len(self.files) < runtime.world:
            self.files = self._materialise()

    def _materialise(self) -> list[str]:
        """Rewrite the train lists into enough parquet parts for every rank to get a share."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(f, columns=[self.item]) for f in self.files])
        parts = min(max(MATERIALISED_PARTS, self.runtime.world), table.num_rows)
        if parts < self.runtime.world:
            raise UserError(f"the train data has {table.num_rows} users, fewer than the {self.runtime.world} ranks")
        self._scratch = Path(tempfile.mkdtemp(prefix="vae-train-"))
        files = []
        for i, rows in enumerate(np.array_split(np.arange(table.num_rows), parts)):
            path = self._scratch / f"part_{i:05d}.parquet"
            pq.write_table(table.slice(int(rows[0]), len(rows)), path)
            files.append(str(path))
        return files

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _loader(self, epoch: int):
        from merlin.dataloader.torch import Loader

        dataset = epoch_dataset(self.files, self.seed, epoch, self.runtime)
        dataset.schema = dataset.schema.select_by_name([self.item])  # the user ids are not needed to train
        return epoch_loader(Loader, dataset, self.users_per_rank, self.seed, epoch, self.runtime)

    def epoch(self, epoch: int, max_steps: int | None = None):
        """Yield (users x items) CSR batches on the device, values 1.0."""
        for features, _ in equal_steps(self._loader(epoch), self.runtime, max_steps):
            yield self.batch(features)

    def batch(self, features: dict) -> torch.Tensor:
        device = self.runtime.device
        items = features[f"{self.item}__values"].to(device, non_blocking=True).view(-1)
        offsets = features[f"{self.item}__offsets"].to(device, non_blocking=True).view(-1)
        return multi_hot(offsets, items, self.n_items)


@dataclass
class HeldOut:
    """This rank's share of held-out users: fold-in lists (the model's input) and target lists, on the device."""

    users: torch.Tensor           # (n,) encoded user ids
    fold_in: tuple                # (offsets, items) tensors
    target: tuple                 # (offsets, items) tensors
    n_items: int
    total_users: int              # over all ranks

    def __len__(self) -> int:
        return len(self.users)

    def batches(self, size: int):
        """Yield (fold-in CSR, target CSR) for consecutive slices of `size` users."""
        for start in range(0, len(self), size):
            end = min(start + size, len(self))
            yield tuple(_rows(offsets, items, start, end, self.n_items) for offsets, items in (self.fold_in, self.target))


def _rows(offsets: torch.Tensor, items: torch.Tensor, start: int, end: int, n_items: int) -> torch.Tensor:
    lo, hi = int(offsets[start]), int(offsets[end])
    return multi_hot(offsets[start:end + 1] - lo, items[lo:hi], n_items)


def load_heldout(spec: FeatureSpec, mapping: str, runtime: Runtime) -> HeldOut:
    """Users with at least one target item, split over ranks by whole users."""
    user, fold_in, target = spec.user_feature, spec.fold_in_feature, spec.target_feature
    data = _read_lists(spec, mapping, [user, fold_in, target])
    users = data[user]
    lengths = np.diff(data[target][0])
    scored = np.flatnonzero(lengths > 0)
    if len(scored) == 0:
        raise UserError(f"source_spec.{mapping}: no user has a target item to predict")
    share = np.array_split(scored, runtime.world)[runtime.rank]

    def take(lists):
        offsets, items = lists
        rows = [items[offsets[i]:offsets[i + 1]] for i in share]
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        lens = np.array([len(r) for r in rows], dtype=np.int64)
        new_offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return torch.from_numpy(new_offsets).to(runtime.device), torch.from_numpy(flat.astype(np.int64)).to(runtime.device)

    return HeldOut(torch.from_numpy(users[share]).to(runtime.device), take(data[fold_in]), take(data[target]),
                   spec.item_cardinality, len(scored))

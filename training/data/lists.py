"""The lists layout: users' item lists streamed by the Merlin loader into CSR batches on the device, and the
held-out users' fold-in and target lists (item counts over the training lists: popularity.py).

The loader returns a list column as `NAME__values` + `NAME__offsets`: exactly the column indices and
row pointers of a CSR matrix, so a batch of users becomes a (users x items) torch.sparse_csr_tensor with
no dense intermediate.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from contract.chunks import read_parquet_lists
from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from ..runtime import Runtime
from ..sparse import Lists, multi_hot
from .merlin_loader import ScratchParts, epoch_dataset, epoch_loader, equal_steps

# A CSR batch is built every step; torch warns once per process that CSR support is "beta".
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def _chunk_with(spec: FeatureSpec, mapping: str, features) -> dict:
    chunk = spec.single_chunk(mapping, features)
    if chunk is None:
        raise UserError(f"source_spec.{mapping}: the lists layout needs {', '.join(features)} in one parquet chunk")
    return chunk


def read_lists(spec: FeatureSpec, mapping: str, features) -> dict:
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


def count_rows(spec: FeatureSpec, mapping: str) -> int:
    """Rows (users) of a mapping, from the parquet footers."""
    import pyarrow.parquet as pq

    chunk = _chunk_with(spec, mapping, [spec.user_feature])
    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in chunk["files"])
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read source_spec.{mapping}: {str(exc).splitlines()[0]}")


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
        self._scratch = ScratchParts(table, self.runtime, "users")
        return self._scratch.files

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()

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
    fold_in: Lists
    target: Lists
    total_users: int              # over all ranks


def load_heldout(spec: FeatureSpec, mapping: str, runtime: Runtime) -> HeldOut:
    """Users with at least one target item, split over ranks by whole users."""
    user, fold_in, target = spec.user_feature, spec.fold_in_feature, spec.target_feature
    data = read_lists(spec, mapping, [user, fold_in, target])
    scored = np.flatnonzero(np.diff(data[target][0]) > 0)
    if len(scored) == 0:
        raise UserError(f"source_spec.{mapping}: no user has a target item to predict")
    share = np.array_split(scored, runtime.world)[runtime.rank]
    device = runtime.device
    return HeldOut(torch.from_numpy(data[user][share]).to(device), Lists.from_numpy(*data[fold_in], device).take(share),
                   Lists.from_numpy(*data[target], device).take(share), len(scored))

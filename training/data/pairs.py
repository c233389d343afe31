"""The pairs layout: streamed (user, item, label) positives with negatives drawn on the device."""
from __future__ import annotations

from typing import NamedTuple

import torch

from contract.feature_spec import FeatureSpec

from ..runtime import Runtime
from ..seeds import epoch_seed
from .merlin_loader import ScratchParts, epoch_dataset, epoch_loader, equal_steps
from .negatives import UniformSampler


class SharedBatch(NamedTuple):
    """A step's positives and the negatives they all share: users (P,), items (P,), negatives (N,)."""
    users: torch.Tensor
    items: torch.Tensor
    negatives: torch.Tensor


class TrainStream:
    """Train positives through NVTabular's TorchAsyncItr, plus negatives drawn on the device by `sampler`
    (uniform by default): -n per positive, or with `shared` N one draw of N items for the whole step.

    Each epoch permutes the partition files with a seed shared by all ranks (the loader itself
    never reorders partitions), shards them by rank, and runs every rank for the same number
    of steps: a rank whose shard is shorter restarts it, so DDP never waits on a finished rank.
    """

    def __init__(self, spec: FeatureSpec, positives_per_rank: int, negatives: int, runtime: Runtime, seed: int,
                 sampler=None, shared: int = 0):
        self.features = [spec.user_feature, spec.item_feature, spec.label_feature]
        self.item_cardinality = spec.item_cardinality
        self.positives_per_rank, self.negatives, self.runtime, self.seed = positives_per_rank, negatives, runtime, seed
        self.sampler = sampler or UniformSampler(spec.item_cardinality, runtime.device)
        self.shared = shared
        self._scratch = None
        chunk = spec.single_chunk("train", self.features)
        if chunk is not None and chunk["type"] == "parquet" and len(chunk["files"]) >= runtime.world:
            self.files = chunk["files"]
        else:  # csv, features over several chunks, or fewer files than ranks
            self.files = self._materialise(spec)

    def _materialise(self, spec: FeatureSpec) -> list[str]:
        """Rewrite train data as parquet parts the loader can stream and give every rank a share of."""
        import pyarrow as pa

        table = pa.Table.from_pandas(spec.read("train", self.features), preserve_index=False)
        self._scratch = ScratchParts(table, self.runtime, "rows")
        return self._scratch.files

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()

    def _loader(self, epoch: int):
        from nvtabular.loader.torch import TorchAsyncItr

        return epoch_loader(TorchAsyncItr, epoch_dataset(self.files, self.seed, epoch, self.runtime),
                            self.positives_per_rank, self.seed, epoch, self.runtime,
                            cats=self.features[:2], labels=[self.features[2]])

    def epoch(self, epoch: int, max_steps: int | None = None):
        """Yield (users, items, labels) on the device: see _with_negatives for their shapes."""
        gen = torch.Generator(device=self.runtime.device).manual_seed(epoch_seed(self.seed, epoch, self.runtime.rank))
        for features, labels in equal_steps(self._loader(epoch), self.runtime, max_steps):
            yield self._with_negatives(features, labels, gen)

    def _with_negatives(self, features: dict, labels: torch.Tensor, gen: torch.Generator):
        """users (P,), items (1 + negatives, P), labels likewise: row 0 the positives, each further row a
        negative for every positive, so a column is one user's samples (the model shares the user's work
        across it). With shared negatives: a SharedBatch (users, items (P,), the step's N negatives)."""
        device = self.runtime.device
        users = features[self.features[0]].to(device, non_blocking=True).view(-1)
        items = features[self.features[1]].to(device, non_blocking=True).view(1, -1)
        if self.shared:
            return SharedBatch(users, items.view(-1), self.sampler.draw((self.shared,), gen))
        labels = labels.to(device, non_blocking=True).view(1, -1).float()
        neg_items = self.sampler.draw((self.negatives, users.numel()), gen)
        return (users, torch.cat([items, neg_items]),
                torch.cat([labels, torch.zeros(self.negatives, users.numel(), device=device)]))

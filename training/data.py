"""FeatureSpec -> device tensors: streamed train batches with on-device negatives, test series."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from etl.errors import UserError
from etl.feature_spec import FeatureSpec, read_chunk_file

from .distributed import Dist

# BYO layouts other than one parquet chunk are rewritten once into this many parquet parts.
MATERIALISED_PARTS = 8


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Every random stream of an epoch derives from (seed, epoch, rank): resuming needs no RNG state."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class TrainStream:
    """Train positives through NVTabular's TorchAsyncItr, plus uniform negatives drawn on the device.

    Each epoch permutes the partition files with a seed shared by all ranks (the loader itself
    never reorders partitions), shards them by rank, and runs every rank for the same number
    of steps: a rank whose shard is shorter restarts it, so DDP never waits on a finished rank.
    """

    def __init__(self, spec: FeatureSpec, batch_size: int, negatives: int, dist: Dist, seed: int):
        self.features = [spec.user_feature, spec.item_feature, spec.label_feature]
        self.item_cardinality = spec.item_cardinality
        self.batch_size, self.negatives, self.dist, self.seed = batch_size, negatives, dist, seed
        self._scratch = None
        chunk = spec.single_chunk("train", self.features)
        if chunk is not None and chunk["type"] == "parquet" and len(chunk["files"]) >= dist.world:
            self.files = chunk["files"]
        else:  # csv, features over several chunks, or fewer files than ranks
            self.files = self._materialise(spec)

    def _materialise(self, spec: FeatureSpec) -> list[str]:
        """Rewrite train data as parquet parts the loader can stream and give every rank a share of."""
        frame = spec.read("train", self.features)
        self._scratch = Path(tempfile.mkdtemp(prefix="ncf-train-"))
        files = []
        parts = min(max(MATERIALISED_PARTS, self.dist.world), len(frame))
        if parts < self.dist.world:
            raise UserError(f"the train data has {len(frame)} rows, fewer than the {self.dist.world} ranks")
        for i, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
            path = self._scratch / f"part_{i:05d}.parquet"
            frame.iloc[part].to_parquet(path, index=False)
            files.append(str(path))
        return files

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _loader(self, epoch: int):
        import nvtabular as nvt
        from nvtabular.loader.torch import TorchAsyncItr

        order = np.random.default_rng(epoch_seed(self.seed, epoch)).permutation(len(self.files))
        dataset = nvt.Dataset([self.files[i] for i in order], engine="parquet",
                              cpu=self.dist.device.type == "cpu")
        shared = epoch_seed(self.seed, epoch)
        loader = TorchAsyncItr(
            dataset, cats=self.features[:2], labels=[self.features[2]], batch_size=self.batch_size,
            shuffle=True, seed_fn=lambda: shared, global_size=self.dist.world, global_rank=self.dist.rank,
        )
        if self.dist.device.type == "cuda":
            # TorchAsyncItr drops its `device` argument and would build every rank's batches on GPU 0.
            loader.device = self.dist.device.index
        return loader

    def epoch(self, epoch: int, max_steps: int | None = None):
        """Yield (users, items, labels) on the device, positives then their negatives."""
        loader = self._loader(epoch)
        steps = min(self.dist.max_int(len(loader)), max_steps or 2**62)
        np.random.seed(epoch_seed(self.seed, epoch, self.dist.rank) % 2**32)  # the loader's row shuffle
        gen = torch.Generator(device=self.dist.device).manual_seed(epoch_seed(self.seed, epoch, self.dist.rank))
        done = 0
        try:
            while done < steps:
                for features, labels in loader:
                    yield self._with_negatives(features, labels, gen)
                    done += 1
                    if done == steps:
                        break
        finally:
            loader.stop()

    def _with_negatives(self, features: dict, labels: torch.Tensor, gen: torch.Generator):
        device = self.dist.device
        users = features[self.features[0]].to(device, non_blocking=True).view(-1)
        items = features[self.features[1]].to(device, non_blocking=True).view(-1)
        labels = labels.to(device, non_blocking=True).view(-1).float()
        n = self.negatives * users.numel()
        neg_items = torch.randint(0, self.item_cardinality, (n,), device=device, generator=gen)
        return (
            torch.cat([users, users.repeat(self.negatives)]),
            torch.cat([items, neg_items]),
            torch.cat([labels, torch.zeros(n, device=device)]),
        )


@dataclass
class TestSeries:
    users: torch.Tensor        # (series, length)
    items: torch.Tensor        # (series, length)
    positive_at: torch.Tensor  # (series,) column of the positive
    total_series: int          # over all ranks


def load_test_series(spec: FeatureSpec, dist: Dist) -> TestSeries:
    """This rank's share of whole test series, on the device."""
    frame = spec.read("test")
    spec.check_ids(frame, "test")
    length = spec.samples_per_series
    if len(frame) == 0 or len(frame) % length:
        raise UserError(
            f"source_spec.test has {len(frame)} rows, not a multiple of "
            f"metadata.test_samples_per_series={length}"
        )
    labels = frame[spec.label_feature].to_numpy().reshape(-1, length)
    positives = (labels == 1).sum(axis=1)
    if (positives != 1).any():
        bad = int((positives != 1).sum())
        raise UserError(f"source_spec.test: {bad} series do not have exactly one positive label "
                        f"(series of {length} rows)")
    share = np.array_split(np.arange(len(labels)), dist.world)[dist.rank]

    def tensor(column):
        values = frame[column].to_numpy().astype(np.int64).reshape(-1, length)[share]
        return torch.from_numpy(values).to(dist.device)

    return TestSeries(
        users=tensor(spec.user_feature), items=tensor(spec.item_feature),
        positive_at=torch.from_numpy(labels[share].argmax(axis=1)).to(dist.device), total_series=len(labels),
    )


def scan_train(spec: FeatureSpec) -> np.ndarray:
    """Check train ids against the cardinalities, file by file, and count item popularity."""
    counts = np.zeros(spec.item_cardinality, dtype=np.int64)
    for chunk in spec.chunks("train"):
        wanted = [f for f in (spec.user_feature, spec.item_feature) if f in chunk["features"]]
        for path in chunk["files"] if wanted else []:
            frame = read_chunk_file(chunk, path, wanted)
            spec.check_ids(frame, "train")
            if spec.item_feature in frame:
                counts += np.bincount(frame[spec.item_feature].to_numpy(), minlength=spec.item_cardinality)
    return counts

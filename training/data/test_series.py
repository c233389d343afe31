"""Evaluation series (one positive and its negatives per user) of the test or validation mapping,
each rank's share on the device."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from ..runtime import Runtime


@dataclass
class TestSeries:
    users: torch.Tensor        # (series, length)
    items: torch.Tensor        # (series, length)
    positive_at: torch.Tensor  # (series,) column of the positive
    total_series: int          # over all ranks


def load_test_series(spec: FeatureSpec, runtime: Runtime, mapping: str = "test") -> TestSeries:
    """This rank's share of whole series of `mapping` (test or validation), on the device."""
    frame = spec.read(mapping)
    spec.check_ids(frame, mapping)
    length = spec.samples_per_series
    if len(frame) == 0 or len(frame) % length:
        raise UserError(
            f"source_spec.{mapping} has {len(frame)} rows, not a multiple of "
            f"metadata.test_samples_per_series={length}"
        )
    labels = frame[spec.label_feature].to_numpy().reshape(-1, length)
    positives = (labels == 1).sum(axis=1)
    if (positives != 1).any():
        bad = int((positives != 1).sum())
        raise UserError(f"source_spec.{mapping}: {bad} series do not have exactly one positive label "
                        f"(series of {length} rows)")
    share = np.array_split(np.arange(len(labels)), runtime.world)[runtime.rank]

    def tensor(column):
        values = frame[column].to_numpy().astype(np.int64).reshape(-1, length)[share]
        return torch.from_numpy(values).to(runtime.device)

    return TestSeries(
        users=tensor(spec.user_feature), items=tensor(spec.item_feature),
        positive_at=torch.from_numpy(labels[share].argmax(axis=1)).to(runtime.device), total_series=len(labels),
    )

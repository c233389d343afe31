"""One full-ranking protocol for every family on a pairs-layout folder (`python -m training.compare`).

Each user's held-out positives of the validation and of the test split (the positives of the pairs
layout's series; its sampled negatives are not used) are ranked against the whole catalogue minus what
the user has: train positives and known interactions, and for test also the validation positive. Every
model is given the same information, the user's train positives: models that read a history fold them
in (Mult-VAE, EASE); the others score from what they were trained on (NeuMF's user row, TopPop).
Where users x items is too large, a seeded sample of the test users is evaluated (on both splits).
The training loop ranks a user's own split (`etl prepare --test-input`) the same way, each rank its share
of the users (`shard`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec

from ..ranking import RankingSet
from ..runtime import Runtime
from ..sparse import Lists

SPLITS = ("validation", "test")


@dataclass
class HeldOutPairs:
    """The train positives of every user and the ranking sets of both held-out splits."""

    train: Lists                  # row u: user u's train positives, sorted (every user index, even unused ones)
    counts: torch.Tensor          # train positives per item
    splits: dict[str, RankingSet]
    test_users: int               # users with a test positive, before sampling
    first_index: int

    @property
    def n_items(self) -> int:
        return len(self.counts)

    @property
    def sampled(self) -> bool:
        return self.splits["test"].total_users < self.test_users


def _keys(spec: FeatureSpec, mapping: str, positives_only: bool) -> np.ndarray:
    """Sorted unique user * items + item keys of a mapping's rows (label 1 only, if asked)."""
    features = [spec.user_feature, spec.item_feature] + ([spec.label_feature] if positives_only else [])
    frame = spec.read(mapping, features)
    spec.check_ids(frame, mapping)
    if positives_only:
        frame = frame[frame[spec.label_feature] == 1]
    return np.unique(frame[spec.user_feature].to_numpy(np.int64) * spec.item_cardinality
                     + frame[spec.item_feature].to_numpy(np.int64))


def sample_users(users: np.ndarray, max_users: int | None, seed: int) -> np.ndarray:
    """`users`, or a seeded sample of `max_users` of them (sorted)."""
    if max_users is None or len(users) <= max_users:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))


def load_heldout_pairs(spec: FeatureSpec, runtime: Runtime, max_users: int | None = None,
                       seed: int = 0, splits=SPLITS, shard: bool = False) -> HeldOutPairs:
    """The protocol's data from a pairs-layout FeatureSpec with validation and test mappings (`splits`); with
    `shard`, each rank's ranking sets hold its share of the users (one process otherwise)."""
    missing = [m for m in splits if m not in spec.source_spec]
    if spec.is_lists or missing:
        what = "the lists layout" if spec.is_lists else f"no {' or '.join(missing)} mapping"
        raise UserError(f"{spec.base_directory} holds {what}: comparing the families needs the pairs layout with "
                        "validation and test positives (`etl prepare` without --split users)")
    n_items, n_users, device = spec.item_cardinality, spec.user_cardinality, runtime.device
    train = _keys(spec, "train", positives_only=False)  # every train row is a positive, as training reads them
    if len(train) == 0:
        raise UserError(f"source_spec.train of {spec.base_directory} has no rows")
    known = _keys(spec, "known", False) if "known" in spec.source_spec else np.zeros(0, np.int64)
    held = {split: _keys(spec, split, positives_only=True) for split in splits}
    test_users = np.unique(held[splits[-1]] // n_items)
    chosen = sample_users(test_users, max_users, seed)
    sets = {}
    for split in splits:
        users = np.intersect1d(np.unique(held[split] // n_items), chosen)
        if len(users) == 0:
            raise UserError(f"source_spec.{split} of {spec.base_directory} has no positive of an evaluated user")
        total = len(users)
        if shard:
            users = np.array_split(users, runtime.world)[runtime.rank]
        # what the user has at that point: train, known, and at test time the validation positives
        have = np.unique(np.concatenate([train, known] + ([held["validation"]] if split == "test" and
                                                          "validation" in held else [])))
        sets[split] = RankingSet(torch.from_numpy(users).to(device), Lists.from_keys(train, users, n_items, device),
                                 Lists.from_keys(have, users, n_items, device),
                                 Lists.from_keys(held[split], users, n_items, device), n_items, total,
                                 recall_of_all=spec.given_split)
    counts = torch.from_numpy(np.bincount(train % n_items, minlength=n_items)).to(device)
    return HeldOutPairs(Lists.from_keys(train, np.arange(n_users), n_items, device), counts, sets,
                        len(test_users), spec.first_index)

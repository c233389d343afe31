"""How a positive is held out and how its sampled negatives are drawn: the one implementation that the ETL
(`etl prepare`) and training (a validation set carved from train, `training/data/carve.py`) share.

Every random choice is a counter-based hash of (seed, user, item, ...): the result depends only on the
data and the seed, never on how the data was partitioned or scheduled, so an ETL partition and a
training process make the same choice for the same user. Pure numpy (the contract stays light).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
RANDOM_SALT = 0x52414E44  # the order of a user's positives when the data has no timestamps
_TIE_SALT = 0x54494553  # which of a user's interactions at the same latest timestamp is held out
_TARGETS_SALT = 0x54415247  # which of a held-out user's items are targets
TARGET_SHARE = 0.2  # of a held-out user's items, the targets (at least 1); the rest are folded in
# Held-out users (lists layout): this share of the eligible users for validation, and as many for test, at least
# HELDOUT_FLOOR where the data has 5 x that many users (NDCG@100 over a few dozen users is mostly noise).
HELDOUT_SHARE, HELDOUT_FLOOR = 0.1, 300


def mix(x):
    """splitmix64 finaliser: a well-spread 64-bit hash of uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_of(seed: int, salt: int, *columns) -> np.ndarray:
    """A uint64 hash per row of equally long integer `columns`, one independent stream per (seed, salt)."""
    h = mix(np.full(len(columns[0]), (seed * 0x100000001 + salt) % 2**64, dtype=np.uint64))
    for column in columns:
        h = mix(h ^ np.asarray(column).astype(np.uint64))
    return h


def random_order(users, items, seed: int) -> np.ndarray:
    """Stand-in timestamps for data without them: a seeded random order of each user's items, so that
    "hold out the latest" holds out a seeded random positive (int64, comparable like timestamps)."""
    return (hash_of(seed, RANDOM_SALT, users, items) >> np.uint64(1)).astype(np.int64)


def hold_out_latest(users, items, timestamps, seed: int):
    """Each user's latest interaction, held out; users with one interaction keep it.

    Ties on the latest timestamp (MovieLens users rate a page of films in one second) are broken by a
    seeded hash of (user, item): a fair draw among them, where ordering by item (as before) held out the
    least frequent of them, a harder item than "the latest" is, and a harder test.
    Returns (rest users, items, timestamps, held users, items).
    """
    order = np.lexsort((hash_of(seed, _TIE_SALT, users, items), timestamps, users))
    users, items, timestamps = users[order], items[order], timestamps[order]
    new_user = np.ones(len(users), dtype=bool)
    new_user[1:] = users[1:] != users[:-1]
    last = np.ones(len(users), dtype=bool)
    last[:-1] = new_user[1:]
    held = last & ~new_user
    return users[~held], items[~held], timestamps[~held], users[held], items[held]


def _candidates(seed: int, users, round_: int, width: int, cardinality: int, first_id: int, stream: int = 0):
    with np.errstate(over="ignore"):
        per_user = mix(mix(users.astype(np.uint64)) ^ np.uint64(seed))
        if stream:  # another independent draw (validation) that leaves stream 0 (test) as it was
            per_user = mix(per_user ^ mix(np.uint64(stream)))
        slots = mix(np.arange(width, dtype=np.uint64) + np.uint64(round_ << 32))
        hashed = mix(per_user[:, None] ^ slots[None, :])
    return (first_id + hashed % np.uint64(cardinality - first_id)).astype(np.int64)


def _first_occurrences(matrix):
    """Mask of the first occurrence of each value in each row (column order)."""
    order = np.argsort(matrix, axis=1, kind="stable")
    ordered = np.take_along_axis(matrix, order, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    mask = np.empty_like(first)
    np.put_along_axis(mask, order, first, axis=1)
    return mask


def unseen_counts(test_users, all_users, cardinality: int, first_id: int):
    """How many real items each test user has not interacted with (`all_users`: one row per distinct pair)."""
    known, seen = np.unique(all_users, return_counts=True)
    if len(known) == 0:
        return np.full(len(test_users), cardinality - first_id)
    at = np.minimum(np.searchsorted(known, test_users), len(known) - 1)
    return (cardinality - first_id) - np.where(known[at] == test_users, seen[at], 0)


def sample_negatives(test_users, all_users, all_items, cardinality: int, n: int, seed: int, first_id: int,
                     rounds: int = 3, stream: int = 0):
    """`n` distinct items in [first_id, cardinality) per test user that the user never interacted with.

    Vectorised rejection sampling over widening candidate rows; the rare users left
    after `rounds` (those who have seen most of the catalogue) are drawn exactly.
    Every test user must have at least `n` unseen items (see `unseen_counts`).
    """
    keys = np.sort(all_users.astype(np.int64) * cardinality + all_items)
    result = np.zeros((len(test_users), n), dtype=np.int64)
    pending = np.arange(len(test_users))
    for round_ in range(rounds):
        if pending.size == 0:
            break
        users = test_users[pending]
        cand = _candidates(seed, users, round_, n * 2 ** (round_ + 1), cardinality, first_id, stream)
        queries = users[:, None].astype(np.int64) * cardinality + cand
        pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
        valid = (keys[pos] != queries) & _first_occurrences(cand)
        enough = valid.sum(axis=1) >= n
        rank = np.cumsum(valid, axis=1)
        take = valid & (rank <= n) & enough[:, None]
        result[pending[enough]] = cand[take].reshape(-1, n)
        pending = pending[~enough]
    for row in pending:  # exact draw for near-saturated users
        user = test_users[row]
        lo, hi = np.searchsorted(keys, [user * cardinality, (user + 1) * cardinality])
        unseen = np.setdiff1d(np.arange(first_id, cardinality), keys[lo:hi] - user * cardinality)
        result[row] = np.random.default_rng([seed, int(user), stream]).choice(unseen, n, replace=False)
    return result


def series_columns(users, positives, negatives) -> dict:
    """Evaluation series as columns, one row per (user, candidate): the positive first, then its negatives."""
    length = negatives.shape[1] + 1
    return {
        "users": np.repeat(users, length),
        "items": np.column_stack([positives, negatives]).ravel(),
        "labels": np.tile(np.r_[1.0, np.zeros(length - 1)].astype(np.float32), len(users)),
    }


@dataclass
class UserLists:
    """Ragged per-user item lists: user i owns items[offsets[i]:offsets[i + 1]]."""

    users: np.ndarray    # (U,) int64
    offsets: np.ndarray  # (U + 1,) int64
    items: np.ndarray    # (offsets[-1],) int64

    @classmethod
    def from_lengths(cls, users, lengths, items) -> "UserLists":
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.asarray(users, dtype=np.int64), offsets, np.asarray(items, dtype=np.int64))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owners(self) -> np.ndarray:
        """The row (not the user id) each item belongs to."""
        return np.repeat(np.arange(len(self.users)), self.lengths)

    def take_users(self, keep: np.ndarray) -> "UserLists":
        """The rows where `keep` (a boolean per user) is True."""
        return self.keep_items(keep[self.owners()], keep)

    def keep_items(self, keep_item: np.ndarray, keep_user: np.ndarray | None = None) -> "UserLists":
        """Drop the items where `keep_item` is False (and the users where `keep_user` is False)."""
        lengths = np.bincount(self.owners()[keep_item], minlength=len(self.users))
        if keep_user is None:
            keep_user = np.ones(len(self.users), dtype=bool)
        return UserLists.from_lengths(self.users[keep_user], lengths[keep_user], self.items[keep_item])

    def __len__(self) -> int:
        return len(self.users)


def fold_in_and_target(heldout: UserLists, seed: int) -> tuple[UserLists, UserLists]:
    """Split each user's items at random: floor(TARGET_SHARE * n) (at least 1) targets, the rest fold-in."""
    owner = heldout.owners()
    n_target = np.maximum(1, np.floor(heldout.lengths * TARGET_SHARE).astype(np.int64))
    order = np.lexsort((heldout.items, hash_of(seed, _TARGETS_SALT, heldout.users[owner], heldout.items), owner))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - heldout.offsets[owner[order]]
    target = rank < n_target[owner]
    return heldout.keep_items(~target), heldout.keep_items(target)


def default_heldout_users(eligible: int) -> int:
    """Validation users (and as many test users) of `eligible` when not given: HELDOUT_SHARE of them, raised
    towards HELDOUT_FLOOR while at least 3/5 of the users are left to train on."""
    return max(1, min(max(int(eligible * HELDOUT_SHARE), HELDOUT_FLOOR), eligible // 5))

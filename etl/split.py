"""Leave-latest-out split and verified test negatives for one user-complete partition.

The partition holds every interaction of its users (the ETL shuffles by user first),
so deduplication, the split and the negatives need no communication. Negatives come
from a counter-based hash of (seed, user, round, slot): the result depends only on the
data and the seed, never on how the data was partitioned or scheduled.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .workflow import FIRST_ID

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def dedup(users, items, timestamps):
    """Drop repeated (user, item) pairs, keeping the earliest; returns (users, items, timestamps, dropped)."""
    order = np.lexsort((timestamps, items, users))
    users, items, timestamps = users[order], items[order], timestamps[order]
    repeat = np.zeros(len(users), dtype=bool)
    repeat[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    return users[~repeat], items[~repeat], timestamps[~repeat], int(repeat.sum())


def hold_out_latest(users, items, timestamps):
    """Each user's latest interaction, held out; users with one interaction keep it.

    Tie-break on the latest timestamp: the interaction with the largest encoded item index
    (the least frequent item) is held out. Returns (rest users, items, timestamps, held users, items).
    """
    order = np.lexsort((items, timestamps, users))
    users, items, timestamps = users[order], items[order], timestamps[order]
    new_user = np.ones(len(users), dtype=bool)
    new_user[1:] = users[1:] != users[:-1]
    last = np.ones(len(users), dtype=bool)
    last[:-1] = new_user[1:]
    held = last & ~new_user
    return users[~held], items[~held], timestamps[~held], users[held], items[held]


def dedup_and_split(users, items, timestamps):
    """Dedup, then hold out each user's latest: (train users, items, test users, items, duplicates dropped)."""
    users, items, timestamps, dropped = dedup(users, items, timestamps)
    train_u, train_i, _, test_u, test_i = hold_out_latest(users, items, timestamps)
    return train_u, train_i, test_u, test_i, dropped


def _mix(x):
    """splitmix64 finaliser: a well-spread 64-bit hash of uint64 arrays (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _candidates(seed: int, users, round_: int, width: int, cardinality: int, stream: int = 0):
    with np.errstate(over="ignore"):
        per_user = _mix(_mix(users.astype(np.uint64)) ^ np.uint64(seed))
        if stream:  # another independent draw (validation) that leaves stream 0 (test) as it was
            per_user = _mix(per_user ^ _mix(np.uint64(stream)))
        slots = _mix(np.arange(width, dtype=np.uint64) + np.uint64(round_ << 32))
        hashed = _mix(per_user[:, None] ^ slots[None, :])
    return (FIRST_ID + hashed % np.uint64(cardinality - FIRST_ID)).astype(np.int64)


def _first_occurrences(matrix):
    """Mask of the first occurrence of each value in each row (column order)."""
    order = np.argsort(matrix, axis=1, kind="stable")
    ordered = np.take_along_axis(matrix, order, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    mask = np.empty_like(first)
    np.put_along_axis(mask, order, first, axis=1)
    return mask


def unseen_counts(test_users, all_users, cardinality: int):
    """How many real items each test user has not interacted with (`all_users`: one row per distinct pair)."""
    known, seen = np.unique(all_users, return_counts=True)
    return (cardinality - FIRST_ID) - seen[np.searchsorted(known, test_users)]


def sample_negatives(test_users, all_users, all_items, cardinality: int, n: int, seed: int, rounds: int = 3,
                     stream: int = 0):
    """`n` distinct items per test user that the user never interacted with.

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
        cand = _candidates(seed, users, round_, n * 2 ** (round_ + 1), cardinality, stream)
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
        unseen = np.setdiff1d(np.arange(FIRST_ID, cardinality), keys[lo:hi] - user * cardinality)
        result[row] = np.random.default_rng([seed, int(user), stream]).choice(unseen, n, replace=False)
    return result


def split_partition(df, item_cardinality: int, negatives: int, seed: int, validation: bool = True):
    """(train, test, validation, known, counts) for one user-complete partition of the encoded data.

    Positives (label 1) are deduplicated; each user's latest is the test positive and, with
    `validation`, the one before it the validation positive (users keep at least one train
    positive). The other interactions become `known` pairs (seen, never trained on, never
    drawn as negatives). Rows with an out-of-vocabulary id (data encoded by an earlier
    workflow) are dropped and counted. A user with fewer than `negatives` unseen items gets no
    series: those positives stay in train.
    """
    users = df["user_id"].to_numpy(np.int64)
    items = df["item_id"].to_numpy(np.int64)
    in_vocabulary = (users >= FIRST_ID) & (items >= FIRST_ID)
    positive = (df["label"].to_numpy() > 0) & in_vocabulary
    u, i, t, dropped = dedup(users[positive], items[positive], df["timestamp"].to_numpy()[positive])
    train_u, train_i, train_t, test_u, test_i = hold_out_latest(u, i, t)
    valid_u, valid_i = train_u[:0], train_i[:0]
    if validation:
        train_u, train_i, train_t, valid_u, valid_i = hold_out_latest(train_u, train_i, train_t)
    known_u, known_i = _known_pairs(users[~positive & in_vocabulary], items[~positive & in_vocabulary],
                                    u, i, item_cardinality)
    all_u, all_i = np.concatenate([u, known_u]), np.concatenate([i, known_i])
    counts = {"interactions": len(users), "duplicates_dropped": dropped, "known_pairs": len(known_u),
              "oov_rows_dropped": int((~in_vocabulary).sum()), "saturated_users": 0}
    series = {}
    for name, (held_u, held_i), stream in (("test", (test_u, test_i), 0), ("validation", (valid_u, valid_i), 1)):
        saturated = unseen_counts(held_u, all_u, item_cardinality) < negatives
        train_u, train_i = np.concatenate([train_u, held_u[saturated]]), np.concatenate([train_i, held_i[saturated]])
        held_u, held_i = held_u[~saturated], held_i[~saturated]
        negs = sample_negatives(held_u, all_u, all_i, item_cardinality, negatives, seed, stream=stream)
        series[name] = _series(held_u, held_i, negs)
        counts[f"{name}_series"] = len(held_u)
        counts["saturated_users"] = max(counts["saturated_users"], int(saturated.sum()))
    counts["train_rows"] = len(train_u)
    return _pairs(train_u, train_i, 1.0), series["test"], series["validation"], _pairs(known_u, known_i, 0.0), counts


def _series(users, positives, negatives) -> pd.DataFrame:
    """One row per (user, candidate): the positive first, then its negatives."""
    length = negatives.shape[1] + 1
    return pd.DataFrame({
        "user_id": np.repeat(users, length),
        "item_id": np.column_stack([positives, negatives]).ravel(),
        "label": np.tile(np.r_[1.0, np.zeros(length - 1)].astype(np.float32), len(users)),
    })


def _known_pairs(users, items, positive_users, positive_items, cardinality: int):
    """Distinct (user, item) pairs of non-positive interactions that are not also positives."""
    keys = np.setdiff1d(users * cardinality + items, positive_users * cardinality + positive_items)
    return keys // cardinality, keys % cardinality


def _pairs(users, items, label: float) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "item_id": items, "label": np.full(len(users), label, np.float32)})

"""Leave-latest-out split and verified test negatives for one user-complete partition.

The partition holds every interaction of its users (the ETL shuffles by user first),
so deduplication, the split and the negatives need no communication. The hold-out and the
negatives are the contract's (`contract/holdout.py`), shared with training's carved validation:
counter-based hashes, so the result depends only on the data and the seed, never on how the
data was partitioned or scheduled. Data without timestamps holds out a seeded random positive.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from contract.holdout import hold_out_latest, random_order, sample_negatives, series_columns, unseen_counts

from .workflow import FIRST_ID

HOLDOUTS = ("latest", "random")  # the held-out positive: the user's latest, or a seeded random one (no timestamps)


def dedup(users, items, timestamps):
    """Drop repeated (user, item) pairs, keeping the earliest; returns (users, items, timestamps, dropped)."""
    order = np.lexsort((timestamps, items, users))
    users, items, timestamps = users[order], items[order], timestamps[order]
    repeat = np.zeros(len(users), dtype=bool)
    repeat[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    return users[~repeat], items[~repeat], timestamps[~repeat], int(repeat.sum())


def split_partition(df, item_cardinality: int, negatives: int, seed: int, validation: bool = True,
                    holdout: str = "latest"):
    """(train, test, validation, known, counts) for one user-complete partition of the encoded data.

    Positives (label 1) are deduplicated; each user's latest is the test positive and, with
    `validation`, the one before it the validation positive (with holdout "random": a seeded random
    positive, then another) (users keep at least one train
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
    if holdout == "random":
        t = random_order(u, i, seed)
    train_u, train_i, train_t, test_u, test_i = hold_out_latest(u, i, t, seed)
    valid_u, valid_i = train_u[:0], train_i[:0]
    if validation:
        train_u, train_i, train_t, valid_u, valid_i = hold_out_latest(train_u, train_i, train_t, seed)
    known_u, known_i = _known_pairs(users[~positive & in_vocabulary], items[~positive & in_vocabulary],
                                    u, i, item_cardinality)
    all_u, all_i = np.concatenate([u, known_u]), np.concatenate([i, known_i])
    counts = {"interactions": len(users), "duplicates_dropped": dropped, "known_pairs": len(known_u),
              "oov_rows_dropped": int((~in_vocabulary).sum()), "saturated_users": 0}
    series = {}
    for name, (held_u, held_i), stream in (("test", (test_u, test_i), 0), ("validation", (valid_u, valid_i), 1)):
        saturated = unseen_counts(held_u, all_u, item_cardinality, FIRST_ID) < negatives
        train_u, train_i = np.concatenate([train_u, held_u[saturated]]), np.concatenate([train_i, held_i[saturated]])
        held_u, held_i = held_u[~saturated], held_i[~saturated]
        negs = sample_negatives(held_u, all_u, all_i, item_cardinality, negatives, seed, FIRST_ID, stream=stream)
        series[name] = _series(held_u, held_i, negs)
        counts[f"{name}_series"] = len(held_u)
        counts["saturated_users"] = max(counts["saturated_users"], int(saturated.sum()))
    counts["train_rows"] = len(train_u)
    return _pairs(train_u, train_i, 1.0), series["test"], series["validation"], _pairs(known_u, known_i, 0.0), counts


def _series(users, positives, negatives) -> pd.DataFrame:
    """One row per (user, candidate): the positive first, then its negatives."""
    columns = series_columns(users, positives, negatives)
    return pd.DataFrame({"user_id": columns["users"], "item_id": columns["items"], "label": columns["labels"]})


def _known_pairs(users, items, positive_users, positive_items, cardinality: int):
    """Distinct (user, item) pairs of non-positive interactions that are not also positives."""
    keys = np.setdiff1d(users * cardinality + items, positive_users * cardinality + positive_items)
    return keys // cardinality, keys % cardinality


def _pairs(users, items, label: float) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "item_id": items, "label": np.full(len(users), label, np.float32)})

"""The users split of the lists layout (VAE-CF's strong generalisation), vectorised over one partition.

A partition holds whole users (the ETL shuffles by user before grouping), each with their items in
time order. What happens to a user:
- positives are deduplicated (first occurrence kept); interactions below the positive rule become the
  user's *known* items (seen, never an input or a target, never recommended back);
- a user with fewer than MIN_POSITIVES distinct positives is dropped (as DeepLearningExamples/Liang et al.);
- N of the others are validation users and N test users: those with the smallest counter-based hash of
  (seed, user), so the choice needs only the global list of eligible users, never an ordering of rows;
- items that no training user has are dropped from the held-out users' lists; a held-out user left with
  fewer than 2 items is dropped too (counted);
- each held-out user's items are split at random into a fold-in list (80%) and a target list
  (floor(20%), at least 1): the items with the smallest hash of (seed, user, item) are the targets.
Both lists keep the time order. Every decision depends only on (seed, user, item) and two global sets
(the held-out users and the training items), so the result is the same whatever the partitioning.
"""
from __future__ import annotations

import numpy as np

from contract.errors import UserError
from contract.holdout import UserLists, default_heldout_users, fold_in_and_target, hash_of

MIN_POSITIVES = 5
_USERS_SALT = 0x5553455253  # the held-out users' stream (the targets have theirs: contract/holdout.py)


def clean(users, offsets, items, labels, first_index: int) -> tuple[UserLists, UserLists, dict]:
    """Per user: distinct positives (first occurrence, time order kept) and distinct known items.

    Users or items below `first_index` (out of vocabulary: data encoded by an earlier workflow) are
    dropped and counted, as the time split does.
    """
    lists = UserLists(np.asarray(users, dtype=np.int64), np.asarray(offsets, dtype=np.int64),
                      np.asarray(items, dtype=np.int64))
    labels = np.asarray(labels)
    owner = lists.owners()
    in_vocabulary = (lists.items >= first_index) & (lists.users[owner] >= first_index)
    positive = (labels > 0) & in_vocabulary
    first_positive = _first_occurrences(owner, lists.items, positive)
    positive_keys = owner[first_positive].astype(np.int64) * (lists.items.max(initial=0) + 1) + lists.items[first_positive]
    all_keys = owner.astype(np.int64) * (lists.items.max(initial=0) + 1) + lists.items
    known = ~positive & in_vocabulary & ~np.isin(all_keys, positive_keys)
    first_known = _first_occurrences(owner, lists.items, known)
    counts = {"interactions": len(lists.items), "oov_rows_dropped": int((~in_vocabulary).sum()),
              "duplicates_dropped": int(positive.sum() - first_positive.sum())}
    return lists.keep_items(first_positive), lists.keep_items(first_known), counts


def _first_occurrences(owner, items, candidate):
    """Mask of the first candidate occurrence of each (row, item), in list order."""
    position = np.flatnonzero(candidate)
    order = np.lexsort((position, items[position], owner[position]))
    ordered = position[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = (owner[ordered[1:]] != owner[ordered[:-1]]) | (items[ordered[1:]] != items[ordered[:-1]])
    mask = np.zeros(len(items), dtype=bool)
    mask[ordered[first]] = True
    return mask


def choose_heldout(users, positives, n: int | None, seed: int, min_positives: int = MIN_POSITIVES):
    """(validation users, test users), sorted: the 2N eligible users with the smallest hash of (seed, user).

    `users` and `positives` are one entry per user over the whole data (any order); N defaults to
    `default_heldout_users` of the eligible users.
    """
    users, positives = np.asarray(users, dtype=np.int64), np.asarray(positives)
    eligible = users[positives >= min_positives]
    if n is None:
        n = default_heldout_users(len(eligible))
    if n < 1:
        raise UserError("--heldout-users must be at least 1")
    if 2 * n >= len(eligible):
        raise UserError(f"--heldout-users {n}: only {len(eligible):,} users have at least {min_positives} positives, so "
                        f"2 x {n} held-out users leave none to train on (use at most {max((len(eligible) - 1) // 2, 0):,})")
    order = np.lexsort((eligible, hash_of(seed, _USERS_SALT, eligible)))
    chosen = eligible[order]
    return np.sort(chosen[:n]), np.sort(chosen[n:2 * n])


def roles(users, positives, validation_users, test_users, min_positives: int = MIN_POSITIVES) -> dict:
    """Boolean masks per user: train, validation, test (dropped users are in none)."""
    eligible = np.asarray(positives) >= min_positives
    validation = np.isin(users, validation_users) & eligible
    test = np.isin(users, test_users) & eligible
    return {"train": eligible & ~validation & ~test, "validation": validation, "test": test}


def train_item_counts(positives: UserLists, validation_users, test_users, cardinality: int,
                      min_positives: int = MIN_POSITIVES) -> np.ndarray:
    """How many training users have each item (sum over partitions for the global set)."""
    train = roles(positives.users, positives.lengths, validation_users, test_users, min_positives)["train"]
    return np.bincount(positives.take_users(train).items, minlength=cardinality)


def split_users(positives: UserLists, known: UserLists, validation_users, test_users, in_train: np.ndarray,
                seed: int, min_positives: int = MIN_POSITIVES) -> tuple[dict, dict]:
    """The lists of one user-complete partition: train, validation and test, and known items.

    Returns ({"train": UserLists, "validation": (fold_in, target), "test": (fold_in, target),
    "known": UserLists}, counts). `in_train` marks the items some training user has.
    """
    role = roles(positives.users, positives.lengths, validation_users, test_users, min_positives)
    out, counts = {"train": positives.take_users(role["train"])}, {}
    counts["train_users"] = len(out["train"])
    counts["train_interactions"] = int(len(out["train"].items))
    counts["users_below_min_positives"] = int((positives.lengths < min_positives).sum())
    dropped_heldout = 0
    for name in ("validation", "test"):
        heldout = positives.take_users(role[name])
        heldout = heldout.keep_items(in_train[heldout.items])
        enough = heldout.lengths >= 2
        dropped_heldout += int((~enough).sum())
        heldout = heldout.take_users(enough)
        out[name] = fold_in_and_target(heldout, seed)
        counts[f"{name}_users"] = len(heldout)
        counts[f"{name}_fold_in_items"] = int(len(out[name][0].items))
        counts[f"{name}_target_items"] = int(len(out[name][1].items))
    counts["heldout_users_dropped"] = dropped_heldout
    kept = np.concatenate([out["train"].users, out["validation"][0].users, out["test"][0].users])
    out["known"] = known.take_users(np.isin(known.users, kept) & (known.lengths > 0))
    counts["known_items"] = int(len(out["known"].items))
    return out, counts

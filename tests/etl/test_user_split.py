"""The users split as properties over random interactions: disjoint users, 80/20 per held-out user, no
held-out item outside the training items, seeded determinism, and the same result whatever the partitioning."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.errors import UserError
from etl.user_split import (
    MIN_POSITIVES,
    UserLists,
    choose_heldout,
    clean,
    fold_in_and_target,
    split_users,
    train_item_counts,
)

FIRST = 3


@st.composite
def interactions(draw):
    """Users with time-ordered (item, label) lists: repeats, non-positives and OOV entries included."""
    n_users = draw(st.integers(8, 40))
    n_items = draw(st.integers(6, 30))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 25, n_users)
    items = rng.integers(FIRST - 1, FIRST + n_items, lengths.sum())  # FIRST - 1 = the OOV index
    labels = (rng.random(lengths.sum()) < 0.8).astype(np.float32)
    users = rng.permutation(np.arange(FIRST, FIRST + n_users))
    return users, lengths, items, labels, FIRST + n_items


def run_split(users, lengths, items, labels, cardinality, n, seed, parts):
    """The ETL's three passes over `parts` partitions of whole users; returns per-mapping {user: lists} and the
    summed counts."""
    owner = np.repeat(np.arange(len(users)), lengths)
    assign = np.random.default_rng(len(users) + parts).integers(0, parts, len(users))
    cleaned = []
    for p in range(parts):
        mine = assign == p
        keep = mine[owner]
        offsets = np.concatenate([[0], np.cumsum(lengths[mine])])
        cleaned.append(clean(users[mine], offsets, items[keep], labels[keep], FIRST))
    all_users = np.concatenate([pos.users for pos, _, _ in cleaned])
    validation, test = choose_heldout(all_users, np.concatenate([pos.lengths for pos, _, _ in cleaned]), n, seed)
    in_train = sum(train_item_counts(pos, validation, test, cardinality) for pos, _, _ in cleaned) > 0
    result = {"train": {}, "validation": {}, "test": {}, "known": {}}
    totals = {key: sum(c[key] for _, _, c in cleaned) for key in cleaned[0][2]}  # the counts, summed as the ETL does
    for positives, known, _ in cleaned:
        out, counts = split_users(positives, known, validation, test, in_train, seed)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        for name in ("train", "known"):
            result[name].update(_as_dict(out[name]))
        for name in ("validation", "test"):
            fold_in, target = out[name]
            assert np.array_equal(fold_in.users, target.users)
            folds, targets = _as_dict(fold_in), _as_dict(target)
            result[name].update({u: (folds[u], targets[u]) for u in folds})
    result["counts"] = totals
    return result, in_train, (validation, test)


def _as_dict(lists: UserLists) -> dict:
    return {int(u): tuple(lists.items[a:b]) for u, a, b in zip(lists.users, lists.offsets[:-1], lists.offsets[1:])}


def _positives(users, lengths, items, labels):
    """Per user: distinct in-vocabulary positive items, first occurrence order (the reference)."""
    out, start = {}, 0
    for user, n in zip(users, lengths):
        seen = []
        for item, label in zip(items[start:start + n], labels[start:start + n]):
            if label > 0 and item >= FIRST and item not in seen:
                seen.append(int(item))
        out[int(user)] = seen
        start += n
    return out


def _known(users, lengths, items, labels, positives):
    """Per user with any: distinct in-vocabulary non-positive items that are not positives, first occurrence order."""
    out, start = {}, 0
    for user, n in zip(users, lengths):
        seen = []
        for item, label in zip(items[start:start + n], labels[start:start + n]):
            if label <= 0 and item >= FIRST and item not in positives[int(user)] and item not in seen:
                seen.append(int(item))
        if seen:
            out[int(user)] = tuple(seen)
        start += n
    return out


@settings(max_examples=60, deadline=None)
@given(interactions(), st.integers(0, 1000), st.integers(2, 5))
def test_split_properties(data, seed, parts):
    users, lengths, items, labels, cardinality = data
    positives = _positives(users, lengths, items, labels)
    eligible = [u for u, p in positives.items() if len(p) >= MIN_POSITIVES]
    n = max(1, len(eligible) // 5)
    if 2 * n >= len(eligible):
        with pytest.raises(UserError, match="leave none to train on"):
            run_split(users, lengths, items, labels, cardinality, n, seed, 1)
        return
    whole, in_train, chosen = run_split(users, lengths, items, labels, cardinality, n, seed, 1)
    split, _, _ = run_split(users, lengths, items, labels, cardinality, n, seed, parts)
    assert split == whole, "the result depends on the partitioning"
    again, _, _ = run_split(users, lengths, items, labels, cardinality, n, seed, 1)
    assert again == whole, "not deterministic for a seed"

    train, validation, test = (set(whole[m]) for m in ("train", "validation", "test"))
    assert not (train & validation or train & test or validation & test), "a user is in two splits"
    assert len(chosen[0]) == len(chosen[1]) == n and set(chosen[0]).isdisjoint(chosen[1])
    assert train == set(eligible) - set(chosen[0]) - set(chosen[1]), "train is not the eligible, non-held-out users"
    train_items = {i for u in train for i in whole["train"][u]}
    assert set(np.flatnonzero(in_train)) == train_items
    for user in train:
        assert list(whole["train"][user]) == positives[user], "train lists are the distinct positives in time order"
    for name in ("validation", "test"):
        assert set(whole[name]) <= set(chosen[0] if name == "validation" else chosen[1])
        for user, (fold_in, target) in whole[name].items():
            kept = [i for i in positives[user] if i in train_items]
            assert set(fold_in) | set(target) <= train_items, "a held-out item no training user has"
            assert not set(fold_in) & set(target) and sorted(fold_in + target) == sorted(kept)
            assert len(target) == max(1, int(0.2 * len(kept))), "not an 80/20 split"
            assert list(fold_in) == [i for i in kept if i not in target], "fold-in lost the time order"
        dropped = [u for u in (chosen[0] if name == "validation" else chosen[1]) if u not in whole[name]]
        assert all(len([i for i in positives[u] if i in train_items]) < 2 for u in dropped)
    kept = train | validation | test
    assert whole["known"] == {u: k for u, k in _known(users, lengths, items, labels, positives).items() if u in kept}

    counts = whole["counts"]
    assert (counts["interactions"], counts["oov_rows_dropped"]) == (len(items), int((items < FIRST).sum()))
    assert counts["duplicates_dropped"] == int(((labels > 0) & (items >= FIRST)).sum()) - sum(map(len, positives.values()))
    assert counts["users_below_min_positives"] == sum(len(p) < MIN_POSITIVES for p in positives.values())
    assert (counts["train_users"], counts["train_interactions"]) == (len(train), sum(map(len, whole["train"].values())))
    for name in ("validation", "test"):
        assert counts[f"{name}_users"] == len(whole[name])
        assert counts[f"{name}_fold_in_items"] == sum(len(f) for f, _ in whole[name].values())
        assert counts[f"{name}_target_items"] == sum(len(t) for _, t in whole[name].values())
    assert counts["heldout_users_dropped"] == 2 * n - len(validation) - len(test)
    assert counts["known_items"] == sum(map(len, whole["known"].values()))


def test_seed_changes_the_choice_and_targets():
    rng = np.random.default_rng(0)
    users = np.arange(FIRST, FIRST + 200)
    lengths = np.full(200, 10)
    items = np.concatenate([rng.choice(np.arange(FIRST, FIRST + 50), 10, replace=False) for _ in users])
    labels = np.ones(len(items))
    a, _, (va, _) = run_split(users, lengths, items, labels, FIRST + 50, 20, seed=1, parts=1)
    b, _, (vb, _) = run_split(users, lengths, items, labels, FIRST + 50, 20, seed=2, parts=1)
    assert set(va) != set(vb)
    assert {u: t for u, (_, t) in a["validation"].items()} != {u: t for u, (_, t) in b["validation"].items()}


def test_heldout_users_need_eligible_users():
    with pytest.raises(UserError, match="only 3 users have at least 5 positives"):
        choose_heldout(np.arange(10), np.r_[np.full(3, 5), np.full(7, 4)], 2, seed=0)


@pytest.mark.parametrize("eligible, n, at_most", [(3, 2, 1), (4, 2, 1), (0, 1, 0)])
def test_heldout_users_refusals_say_the_limit(eligible, n, at_most):
    positives = np.r_[np.full(eligible, MIN_POSITIVES), np.full(3, MIN_POSITIVES - 1)]
    message = (f"--heldout-users {n}: only {eligible} users have at least 5 positives, so 2 x {n} held-out users "
               f"leave none to train on (use at most {at_most})")
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        choose_heldout(np.arange(len(positives)), positives, n, seed=0)
    with pytest.raises(UserError, match="^--heldout-users must be at least 1$"):
        choose_heldout(np.arange(len(positives)), positives, 0, seed=0)


@pytest.mark.parametrize("eligible, n", [(4, 1), (15, 3), (200, 40), (2_000, 300), (6_040, 604)])
def test_heldout_users_default_to_a_tenth_raised_towards_300_leaving_three_fifths_to_train(eligible, n):
    positives = np.r_[np.full(eligible, MIN_POSITIVES), np.full(5, MIN_POSITIVES - 1)]
    validation, test = choose_heldout(np.arange(len(positives)), positives, None, seed=0)
    assert len(validation) == len(test) == n and set(validation) | set(test) <= set(range(eligible))


def test_a_heldout_user_needs_two_items_that_training_users_have():
    """The drop rule at its boundary: 2 training items are kept (1 target, 1 fold-in), 1 is dropped and counted."""
    users = np.array([10, 11, 12, 13, 14])
    items = [3, 4, 5, 6, 7] * 2 + [3, 4, 20, 21, 22] + [3, 20, 21, 22, 23] * 2
    positives = UserLists.from_lengths(users, np.full(5, 5), items)
    known = UserLists.from_lengths(users, np.zeros(5, dtype=np.int64), [])
    in_train = np.isin(np.arange(30), [3, 4, 5, 6, 7])
    out, counts = split_users(positives, known, [12, 13], [14], in_train, seed=0)
    fold_in, target = out["validation"]
    assert fold_in.users.tolist() == target.users.tolist() == [12] and len(target.items) == 1
    assert sorted([*fold_in.items, *target.items]) == [3, 4] and len(out["test"][0]) == 0
    assert counts["heldout_users_dropped"] == 2


def test_targets_are_a_seeded_choice_per_user():
    """Users with the same list get their own targets, and another seed (same parity) another choice."""
    lists = UserLists.from_lengths(np.arange(FIRST, FIRST + 50), np.full(50, 10), np.tile(np.arange(10) + FIRST, 50))

    def targets(seed):
        return [tuple(t) for t in np.split(fold_in_and_target(lists, seed)[1].items, 50)]

    assert len(set(targets(1))) > 1 and targets(1) != targets(3)


def test_an_empty_partition_cleans_to_empty_lists():
    empty = np.zeros(0, dtype=np.int64)
    positives, known, counts = clean(empty, np.zeros(1, dtype=np.int64), empty, np.zeros(0), FIRST)
    assert len(positives) == len(known) == 0 and counts == {"interactions": 0, "oov_rows_dropped": 0,
                                                             "duplicates_dropped": 0}

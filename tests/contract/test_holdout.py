"""The shared hold-out rules: verified negatives, the latest (or a seeded random) positive held out."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.holdout import hash_of, hold_out_latest, random_order, sample_negatives, unseen_counts

FIRST_ID = 3  # the ETL's first real index (0-2 reserved); BYO data starts at 0


def test_negatives_are_unseen_distinct_and_deterministic():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200), 30) + 3
    items = rng.integers(3, 60, len(users))
    test_users = np.arange(200) + 3
    negs = sample_negatives(test_users, users, items, cardinality=63, n=25, seed=11, first_id=FIRST_ID)
    assert negs.shape == (200, 25)
    assert negs.min() >= 3 and negs.max() < 63
    for u, row in zip(test_users, negs):
        assert len(set(row)) == 25
        assert not set(row) & set(items[users == u])
    again = sample_negatives(test_users, users, items, cardinality=63, n=25, seed=11, first_id=FIRST_ID)
    assert np.array_equal(negs, again)
    # the draw for a user does not depend on which other users share the partition
    alone = sample_negatives(test_users[:5], users[:150], items[:150], cardinality=63, n=25, seed=11, first_id=FIRST_ID)
    assert np.array_equal(alone, negs[:5])


def test_near_saturated_user_gets_every_remaining_item():
    users = np.zeros(45, dtype=np.int64) + FIRST_ID
    items = np.arange(3, 48)  # 45 of the 50 real items seen
    negs = sample_negatives(np.array([3]), users, items, cardinality=53, n=5, seed=1, first_id=FIRST_ID)
    assert sorted(negs[0]) == [48, 49, 50, 51, 52]


@settings(max_examples=100, deadline=None)
@given(histories=st.lists(st.sets(st.integers(FIRST_ID, 40), min_size=1, max_size=30), min_size=1, max_size=12),
       n=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_negative_properties(histories, n, seed):
    cardinality = 41
    users = np.concatenate([np.full(len(h), u + FIRST_ID) for u, h in enumerate(histories)])
    items = np.concatenate([sorted(h) for h in histories])
    test_users = np.arange(len(histories)) + FIRST_ID
    unseen = unseen_counts(test_users, users, cardinality, FIRST_ID)
    assert unseen.tolist() == [cardinality - FIRST_ID - len(h) for h in histories]
    if unseen.min() < n:  # split_partition keeps such users out of the test split
        return
    negs = sample_negatives(test_users, users, items, cardinality, n, seed, FIRST_ID)
    assert negs.shape == (len(histories), n)
    for row, history in zip(negs, histories):
        assert len(set(row.tolist())) == n and not set(row.tolist()) & history
        assert row.min() >= FIRST_ID and row.max() < cardinality
    assert np.array_equal(negs, sample_negatives(test_users, users, items, cardinality, n, seed, FIRST_ID))
    # a user's draw does not depend on who else shares the partition
    first = users == test_users[0]
    assert np.array_equal(negs[:1], sample_negatives(test_users[:1], users[first], items[first], cardinality, n, seed, FIRST_ID))


def test_without_timestamps_a_seeded_random_positive_is_held_out():
    users = np.repeat(np.arange(400), 10)
    items = np.tile(np.arange(10), 400)
    order = random_order(users, items, seed=5)
    _, _, _, held_u, held_i = hold_out_latest(users, items, order, 5)
    assert held_u.tolist() == list(range(400))
    # every position is held out for some user (not always the largest item, as ordering ties by item would)
    assert set(held_i.tolist()) == set(range(10))
    again = hold_out_latest(users, items, random_order(users, items, seed=5), 5)[4]
    other = hold_out_latest(users, items, random_order(users, items, seed=6), 6)[4]
    assert np.array_equal(held_i, again) and not np.array_equal(held_i, other)
    # a user's choice does not depend on the other users present
    alone = hold_out_latest(users[:10], items[:10], random_order(users[:10], items[:10], seed=5), 5)[4]
    assert alone[0] == held_i[0]


def test_negatives_from_index_zero_and_users_without_history():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 2])
    negs = sample_negatives(np.array([0, 1]), users, items, cardinality=6, n=4, seed=0, first_id=0)
    assert sorted(negs[0]) == [2, 3, 4, 5] and 2 not in negs[1] and negs.min() >= 0
    assert unseen_counts(np.array([0, 1, 7]), users, 6, 0).tolist() == [4, 5, 6]


def test_the_hash_spreads_consecutive_ids():
    """No collision over 10,000 consecutive ids and the top bit set about half the time: a fair draw."""
    h = hash_of(7, 1, np.arange(10_000))
    assert len(np.unique(h)) == len(h) and 0.45 < (h >> np.uint64(63)).mean() < 0.55


def test_the_rest_is_every_interaction_but_the_held_out_one_with_its_own_timestamp():
    rng = np.random.default_rng(3)
    pairs = rng.choice(50 * 300, 2000, replace=False)  # distinct (user, item) pairs
    users, items, timestamps = pairs // 300, pairs % 300, rng.integers(0, 10**6, 2000)
    rest_u, rest_i, rest_t, held_u, held_i = hold_out_latest(users, items, timestamps, 1)
    stamp = dict(zip(zip(users.tolist(), items.tolist()), timestamps.tolist()))
    rest = set(zip(rest_u.tolist(), rest_i.tolist()))
    held = set(zip(held_u.tolist(), held_i.tolist()))
    assert not rest & held and rest | held == set(stamp) and len(rest_u) + len(held_u) == len(users)
    assert all(stamp[pair] == t for pair, t in zip(zip(rest_u.tolist(), rest_i.tolist()), rest_t.tolist()))
    latest = {}
    for u, t in zip(users.tolist(), timestamps.tolist()):
        latest[u] = max(latest.get(u, t), t)
    assert all(latest[u] == stamp[(u, i)] for u, i in held)


def test_ties_on_the_latest_timestamp_are_a_seeded_draw():
    users, items = np.repeat(np.arange(200), 8), np.tile(np.arange(8), 200)
    same_time = np.zeros(len(users), dtype=np.int64)
    held = {seed: hold_out_latest(users, items, same_time, seed)[4] for seed in (1, 2)}
    assert np.array_equal(held[1], hold_out_latest(users, items, same_time, 1)[4])
    assert (held[1] != held[2]).mean() > 0.5  # another seed, another draw for most users
    assert set(held[1].tolist()) == set(range(8))


def test_unseen_counts_without_any_history_are_the_whole_catalogue():
    assert unseen_counts(np.array([3, 4]), np.zeros(0, np.int64), cardinality=10, first_id=3).tolist() == [7, 7]


def test_near_saturated_users_get_a_seeded_draw_of_their_own_unseen_items():
    """The exact draw for users who have seen most of the catalogue is seeded like the rest."""
    users = np.r_[np.full(45, 3), np.full(45, 4)]
    items = np.r_[np.arange(3, 48), np.arange(8, 53)]  # user 3 has not seen 48-52, user 4 not 3-7
    negs = sample_negatives(np.array([3, 4]), users, items, cardinality=53, n=2, seed=1, first_id=FIRST_ID)
    assert set(negs[0]) <= set(range(48, 53)) and set(negs[1]) <= set(range(3, 8))
    assert len(set(negs[0])) == 2 and len(set(negs[1])) == 2
    for _ in range(3):
        again = sample_negatives(np.array([3, 4]), users, items, cardinality=53, n=2, seed=1, first_id=FIRST_ID)
        assert np.array_equal(negs, again)

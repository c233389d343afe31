"""Dedup, leave-latest-out split and verified negatives on hand-made cases."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.holdout import hold_out_latest
from etl.split import dedup, split_partition


def dedup_and_split(users, items, timestamps, seed: int):
    """What split_partition does to positives: dedup, then hold out each user's latest."""
    users, items, timestamps, dropped = dedup(users, items, timestamps)
    train_u, train_i, _, test_u, test_i = hold_out_latest(users, items, timestamps, seed)
    return train_u, train_i, test_u, test_i, dropped


def test_split_by_hand_with_duplicates_and_ties():
    #                     user 3: item 5 twice (keep earliest), latest time 30 is tied by items 6 and 9
    users = np.array([3, 3, 3, 3, 3, 4, 4, 7])
    items = np.array([5, 6, 5, 9, 8, 5, 6, 8])
    times = np.array([10, 30, 40, 30, 20, 1, 2, 9])
    held = set()
    for seed in range(16):
        tr_u, tr_i, te_u, te_i, dropped = dedup_and_split(users, items, times, seed)
        assert dropped == 1
        # After dedup item 5 keeps time 10, so the latest is the tie at 30 (items 6 and 9): a seeded draw between them
        (user3_test,) = te_i[te_u == 3]
        assert user3_test in (6, 9) and list(te_i[te_u == 4]) == [6]
        assert sorted(zip(tr_u.tolist(), tr_i.tolist())) == sorted([(3, 5), (3, 8), (3, 15 - user3_test), (4, 5), (7, 8)])
        # user 7 has one interaction: it stays in train and gets no test series
        assert 7 not in te_u
        assert (dedup_and_split(users, items, times, seed)[3] == te_i).all()  # the same seed, the same draw
        held.add(int(user3_test))
    # a fair draw: the rarer item (the larger index) is not always the one held out
    assert held == {6, 9}


def _encoded(rows):
    users, items, labels, times = (np.array(c) for c in zip(*rows))
    return pd.DataFrame({"user_id": users, "item_id": items, "label": labels.astype(np.float32), "timestamp": times})


def test_a_user_without_enough_unseen_items_keeps_the_latest_in_train_and_is_counted():
    # user 3 has seen 48 of the 50 items, fewer than 5 negatives remain; user 4 is ordinary
    rows = [(3, i, 1.0, i) for i in range(3, 51)] + [(4, 3, 1.0, 1), (4, 4, 1.0, 2)]
    train, test, validation, known, counts = split_partition(_encoded(rows), 53, negatives=5, seed=1)
    assert counts["saturated_users"] == 1 and counts["test_series"] == 1 and counts["validation_series"] == 0
    assert set(test["user_id"]) == {4}
    assert sorted(train.loc[train["user_id"] == 3, "item_id"]) == list(range(3, 51))


def test_non_positives_are_known_never_trained_never_negatives_and_oov_rows_are_dropped():
    rows = [(3, i, 1.0, i) for i in range(3, 9)]            # positives 3..8, latest 8 is the test positive
    rows += [(3, i, 0.0, 50 + i) for i in range(9, 40)]     # rated below the rule: known
    rows += [(3, 5, 0.0, 99)]                               # a positive pair rated low again: still a positive
    rows += [(2, 4, 1.0, 1), (3, 2, 1.0, 2)]                # out-of-vocabulary user / item
    train, test, validation, known, counts = split_partition(_encoded(rows), 43, negatives=3, seed=7)
    assert sorted(train["item_id"]) == [3, 4, 5, 6] and (train["label"] == 1).all()
    assert validation["item_id"].iloc[0] == 7 and test["item_id"].iloc[0] == 8
    assert sorted(known["item_id"]) == list(range(9, 40)) and (known["label"] == 0).all()
    negatives = pd.concat([test, validation]).query("label == 0")["item_id"]
    assert set(negatives) <= {40, 41, 42}
    assert counts["known_pairs"] == 31 and counts["oov_rows_dropped"] == 2 and counts["interactions"] == len(rows)


# ---- properties over random inputs (hypothesis) ----------------------------------------------

interactions = st.lists(st.tuples(st.integers(3, 9), st.integers(3, 14), st.integers(0, 5)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=interactions, order_seed=st.integers(0, 2**32 - 1))
def test_split_properties(rows, order_seed):
    users, items, times = (np.array(c, dtype=np.int64) for c in zip(*rows))
    tr_u, tr_i, te_u, te_i, dropped = dedup_and_split(users, items, times, order_seed % 7)
    earliest = {}
    for u, i, t in rows:
        earliest[(u, i)] = min(t, earliest.get((u, i), t))
    # every distinct pair lands exactly once, in train or as a test positive
    out = list(zip(tr_u.tolist(), tr_i.tolist())) + list(zip(te_u.tolist(), te_i.tolist()))
    assert sorted(out) == sorted(earliest) and dropped == len(rows) - len(earliest)
    # one test positive per user with 2+ distinct items: one of those at the user's latest timestamp
    by_user = {}
    for (u, i), t in earliest.items():
        by_user.setdefault(u, []).append((t, i))
    latest = {u: {i for t, i in pairs if t == max(pairs)[0]} for u, pairs in by_user.items() if len(pairs) > 1}
    held = dict(zip(te_u.tolist(), te_i.tolist()))
    assert held.keys() == latest.keys() and len(te_u) == len(latest)
    assert all(held[u] in latest[u] for u in held)
    # the result does not depend on the order rows arrive in
    perm = np.random.default_rng(order_seed).permutation(len(rows))
    again = dedup_and_split(users[perm], items[perm], times[perm], order_seed % 7)
    assert sorted(zip(again[2].tolist(), again[3].tolist())) == sorted(zip(te_u.tolist(), te_i.tolist()))


def test_validation_is_the_second_latest_positive_with_its_own_negatives():
    rows = [(u, i, 1.0, 100 * u + i) for u in (3, 4) for i in range(3, 8)] + [(5, 3, 1.0, 1), (5, 4, 1.0, 2)]
    train, test, validation, known, counts = split_partition(_encoded(rows), 203, negatives=20, seed=2)
    assert test.query("label == 1")[["user_id", "item_id"]].values.tolist() == [[3, 7], [4, 7], [5, 4]]
    # user 5 has two positives: one for test, one left to train on, none for validation
    assert validation.query("label == 1")[["user_id", "item_id"]].values.tolist() == [[3, 6], [4, 6]]
    assert counts["validation_series"] == 2 and counts["train_rows"] == 2 * 3 + 1
    # another stream of the same hash: validation negatives are not the test ones
    negatives = {name: frame.query("label == 0 and user_id == 3")["item_id"].tolist()
                 for name, frame in (("test", test), ("validation", validation))}
    assert negatives["test"] != negatives["validation"]
    assert not set(negatives["validation"]) & set(range(3, 8))
    # without validation, the test split is unchanged and the validation positive is trained on
    train2, test2, validation2, _, _ = split_partition(_encoded(rows), 203, negatives=20, seed=2, validation=False)
    pd.testing.assert_frame_equal(test, test2)
    assert validation2.empty and len(train2) == len(train) + 2


@settings(max_examples=100, deadline=None)
@given(rows=interactions)
def test_every_positive_lands_once_in_train_validation_or_test(rows):
    frame = _encoded([(u, i, 1.0, t) for u, i, t in rows])
    train, test, validation, _, counts = split_partition(frame, 60, negatives=3, seed=0)
    held = pd.concat([test, validation]).query("label == 1")
    out = sorted(zip(train["user_id"], train["item_id"])) + sorted(zip(held["user_id"], held["item_id"]))
    assert sorted(out) == sorted({(u, i) for u, i, _ in rows})
    # a user with a validation series also has a test series and keeps at least one train positive
    for user in set(validation["user_id"]):
        assert user in set(test["user_id"]) and user in set(train["user_id"])

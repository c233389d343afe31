"""The pairs stream: real TorchAsyncItr batches, negatives on the device, equal steps on every rank."""

import math

import torch

from contract.feature_spec import FeatureSpec
from training.data.pairs import TrainStream
from training.runtime import Runtime

NEGATIVES = 8


class _OneRankOfTwo(Runtime):
    """A rank of a 2-rank world without a process group: the step count is its own shard's."""

    def max_int(self, value: int) -> int:
        return value


def _negatives(spec, epoch=0, seed=0, runtime=None, steps=4) -> list[torch.Tensor]:
    stream = TrainStream(spec, positives_per_rank=2048, negatives=NEGATIVES, runtime=runtime or Runtime(), seed=seed)
    try:
        return [items[1:] for _, items, _ in stream.epoch(epoch, max_steps=steps)]
    finally:
        stream.close()


def test_a_batch_is_the_positives_then_their_negatives(prepared):
    spec = FeatureSpec.from_yaml(prepared)
    stream = TrainStream(spec, positives_per_rank=2048, negatives=4, runtime=Runtime(), seed=0)
    users, items, labels = next(iter(stream.epoch(0)))
    stream.close()
    # a column per positive: its item, then 4 negatives; the user once per column
    assert users.shape == (2048,) and items.shape == labels.shape == (5, 2048)
    assert (labels[0] == 1).all() and (labels[1:] == 0).all()
    train = spec.read("train")
    pairs = set(zip(train[spec.user_feature], train[spec.item_feature]))
    assert all((u, i) in pairs for u, i in zip(users.tolist(), items[0].tolist()))  # row 0: real positives


def test_negatives_are_uniform_over_every_item_index(prepared):
    """Pearson's chi-square of 65k draws over the item table against U{0..card-1}: a constant, a shifted or
    narrowed range, popularity-weighted draws or rows that repeat each other all land far above the bound."""
    spec = FeatureSpec.from_yaml(prepared)
    card = spec.item_cardinality
    steps = _negatives(spec)
    assert len(steps) == 4 and all(s.shape == (NEGATIVES, 2048) for s in steps)
    draws = torch.cat([s.reshape(-1) for s in steps]).long().cpu()
    assert draws.min() >= 0 and draws.max() < card
    counts = torch.bincount(draws, minlength=card).double()
    expected = len(draws) / card  # ~216 per item index
    assert counts.min() > 0, "some item index is never drawn"
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = card - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), f"chi-square {chi2:.0f} for {dof} degrees of freedom"


def test_negatives_differ_by_step_epoch_and_rank_and_repeat_for_the_same_ones(prepared):
    """Drawn from (seed, epoch, rank): a resumed epoch draws the same negatives, ranks draw their own."""
    spec = FeatureSpec.from_yaml(prepared)
    first = _negatives(spec, steps=2)
    assert not torch.equal(first[0], first[1]), "every step draws the same negatives"
    assert not torch.equal(first[0][0], first[0][1]), "every negative row repeats the first"
    assert all(torch.equal(a, b) for a, b in zip(first, _negatives(spec, steps=2))), "not reproducible"
    assert not torch.equal(_negatives(spec, epoch=1, steps=1)[0], first[0]), "every epoch draws the same negatives"
    assert not torch.equal(_negatives(spec, seed=1, steps=1)[0], first[0]), "the seed changes nothing"
    ranks = [_negatives(spec, runtime=_OneRankOfTwo(rank=r, world=2), steps=1)[0] for r in (0, 1, 1)]
    assert torch.equal(ranks[1], ranks[2]), "a rank's negatives are not reproducible"
    assert not torch.equal(ranks[0], ranks[1]), "both ranks draw the same negatives"


def test_max_steps_caps_an_epoch(prepared):
    stream = TrainStream(FeatureSpec.from_yaml(prepared), 256, 1, Runtime(), seed=0)
    assert sum(1 for _ in stream.epoch(0, max_steps=3)) == 3
    stream.close()

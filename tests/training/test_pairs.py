"""The pairs stream: real TorchAsyncItr batches, negatives on the device, equal steps on every rank."""


from contract.feature_spec import FeatureSpec
from training.data.pairs import TrainStream
from training.runtime import Runtime


def test_negatives_are_uniform_on_the_device(prepared):
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
    neg = items[1:].double()
    card = spec.item_cardinality
    assert neg.min() >= 0 and neg.max() < card
    assert abs(neg.mean().item() - (card - 1) / 2) < 0.05 * card  # mean of U{0..card-1}


def test_max_steps_caps_an_epoch(prepared):
    stream = TrainStream(FeatureSpec.from_yaml(prepared), 256, 1, Runtime(), seed=0)
    assert sum(1 for _ in stream.epoch(0, max_steps=3)) == 3
    stream.close()

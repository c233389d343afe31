"""The pairs stream: real TorchAsyncItr batches, negatives on the device, equal steps on every rank."""
import json

import pytest
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from contract.feature_spec import FeatureSpec
from etl.prepare import PrepareConfig, prepare
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


@pytest.fixture(scope="module")
def uneven(tmp_path_factory, synthetic_raw):
    """3 partitions over 2 ranks: the loader alone gives rank 0 two partitions and rank 1 one."""
    root = tmp_path_factory.mktemp("uneven")
    prepare(PrepareConfig(input=synthetic_raw, output=root / "d", workflow_dir=root / "w", partitions=3,
                          negatives=20, quiet=True))
    return root / "d"


def _count_steps(rank, world, data, init_file, out_dir):
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        stream = TrainStream(FeatureSpec.from_yaml(data), 256, 1, Runtime(rank=rank, world=world), seed=0)
        own = len(stream._loader(0))
        steps = sum(1 for _ in stream.epoch(0))
        stream.close()
        (out_dir / f"{rank}.json").write_text(json.dumps({"own": own, "steps": steps}))
    finally:
        torch_dist.destroy_process_group()


def test_every_rank_runs_the_longest_shards_steps(uneven, tmp_path):
    """Two real gloo ranks: unequal shards, equal steps (else DDP's all-reduce would hang)."""
    mp.spawn(_count_steps, args=(2, uneven, tmp_path / "init", tmp_path), nprocs=2)
    counts = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    own = [c["own"] for c in counts]
    assert own[0] != own[1], "the fixture must give the ranks shards of different lengths"
    assert [c["steps"] for c in counts] == [max(own)] * 2

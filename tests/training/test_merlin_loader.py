"""Both streams' epochs on the Merlin loader: its thread sleeps, not spins, while its queue is full, and
every rank runs the same number of steps however unevenly the partitions fall."""
import json
import time

import pytest
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from contract.feature_spec import FeatureSpec
from etl.prepare import PrepareConfig, prepare
from training.data.lists import ListStream
from training.data.pairs import TrainStream
from training.runtime import Runtime

IDLE_S = 0.6


def _cpu_seconds_while_the_consumer_waits(batches) -> float:
    next(batches)  # the loader thread now has a chunk queued and the next one waiting for room
    time.sleep(0.2)
    begin = time.process_time()
    time.sleep(IDLE_S)
    return time.process_time() - begin


@pytest.mark.parametrize("layout", ["pairs", "lists"])
def test_the_loader_thread_does_not_spin_on_a_full_queue(layout, prepared, prepared_lists):
    if layout == "pairs":  # 8 train partitions, one chunk each: the queue fills while one step runs
        stream = TrainStream(FeatureSpec.from_yaml(prepared), 64, 1, Runtime(), seed=0)
    else:
        stream = ListStream(FeatureSpec.from_yaml(prepared_lists), 8, Runtime(), seed=0)
    batches = stream.epoch(0)
    try:
        busy = _cpu_seconds_while_the_consumer_waits(batches)
    finally:
        batches.close()
        stream.close()
    # measured: spinning (1 us put timeout) ~0.22 s of CPU in 0.6 s; sleeping ~0.003 s
    assert busy < 0.1 * IDLE_S, f"{busy:.2f} CPU seconds used in {IDLE_S} s of waiting"


@pytest.fixture(scope="module", params=["pairs", "lists"])
def uneven(request, tmp_path_factory, synthetic_raw):
    """3 partitions over 2 ranks: the loader alone gives rank 0 two partitions and rank 1 one."""
    root = tmp_path_factory.mktemp(f"uneven-{request.param}")
    split = {"negatives": 20} if request.param == "pairs" else {"split": "users", "heldout_users": 10}
    prepare(PrepareConfig(input=synthetic_raw, output=root / "d", workflow_dir=root / "w", partitions=3, quiet=True,
                          **split))
    return request.param, root / "d"


def _count_steps(rank, world, layout, data, init_file, out_dir):
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        spec, runtime = FeatureSpec.from_yaml(data), Runtime(rank=rank, world=world)
        stream = TrainStream(spec, 256, 1, runtime, seed=0) if layout == "pairs" else ListStream(spec, 16, runtime, seed=0)
        own = len(stream._loader(0))
        steps = sum(1 for _ in stream.epoch(0))
        stream.close()
        (out_dir / f"{rank}.json").write_text(json.dumps({"own": own, "steps": steps}))
    finally:
        torch_dist.destroy_process_group()


def test_every_rank_runs_the_longest_shards_steps(uneven, tmp_path):
    """Two real gloo ranks: unequal shards, equal steps (else DDP's all-reduce would hang)."""
    layout, data = uneven
    mp.spawn(_count_steps, args=(2, layout, data, tmp_path / "init", tmp_path), nprocs=2)
    counts = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    own = [c["own"] for c in counts]
    assert own[0] != own[1], "the fixture must give the ranks shards of different lengths"
    assert [c["steps"] for c in counts] == [max(own)] * 2

"""Both streams' epochs on the Merlin loader: its thread sleeps, not spins, while its queue is full; every rank
runs the same number of steps however unevenly the partitions fall; the row order comes from (seed, epoch,
rank) and leaves the process-wide numpy RNG alone; Merlin's own modules stay unpatched."""
import importlib.metadata
import inspect
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from contract.chunks import read_parquet_lists
from contract.feature_spec import FeatureSpec
from etl.prepare import PrepareConfig, prepare
from training.data.lists import ListStream
from training.data.merlin_loader import LOADER_INTERNALS, MERLIN_PIN, epoch_dataset, epoch_loader
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


def _stream(layout, prepared, prepared_lists, seed=0):
    if layout == "pairs":
        return TrainStream(FeatureSpec.from_yaml(prepared), 1024, 1, Runtime(), seed=seed)
    return ListStream(FeatureSpec.from_yaml(prepared_lists), 32, Runtime(), seed=seed)


def _fingerprint(batch) -> tuple:
    """A batch as plain tuples: the pairs stream's users and positives, or the lists stream's CSR rows."""
    if isinstance(batch, tuple):
        users, items, _ = batch
        return tuple(users.tolist()), tuple(items[0].tolist())
    crow, cols = batch.crow_indices().tolist(), batch.col_indices().tolist()
    return tuple(tuple(cols[crow[r]:crow[r + 1]]) for r in range(batch.shape[0]))


def _same_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.mark.parametrize("layout", ["pairs", "lists"])
def test_the_row_order_is_the_epochs_own_and_leaves_the_global_numpy_rng_alone(layout, prepared, prepared_lists):
    """Same (seed, epoch, rank): the same batches whatever the global numpy RNG holds (a resume replays its epoch
    exactly); another epoch or seed: another order; the global RNG state after an epoch is the one before."""
    def epoch(number, seed=0, global_seed=0):
        np.random.seed(global_seed)
        before = np.random.get_state()
        stream = _stream(layout, prepared, prepared_lists, seed)
        try:
            batches = [_fingerprint(b) for b in stream.epoch(number)]
        finally:
            stream.close()
        assert _same_state(before, np.random.get_state()), "an epoch drew from or reseeded the global numpy RNG"
        return batches

    first = epoch(0)
    assert len(first) > 2
    assert epoch(0, global_seed=1) == first, "the row order depends on the global numpy RNG"
    assert epoch(1) != first, "every epoch has the same row order"
    assert epoch(0, seed=1) != first, "the seed does not change the row order"


def test_rows_are_shuffled_inside_a_partition(prepared_lists):
    from merlin.dataloader.torch import Loader

    spec = FeatureSpec.from_yaml(prepared_lists)
    path, item = spec.chunks("train")[0]["files"][0], spec.item_feature
    offsets, values = read_parquet_lists(path, [item])[item]
    in_file = [tuple(values[offsets[r]:offsets[r + 1]].tolist()) for r in range(len(offsets) - 1)]

    def first_batch(seed, epoch=0):
        dataset = epoch_dataset([path], seed, epoch, Runtime())
        dataset.schema = dataset.schema.select_by_name([item])
        loader = epoch_loader(Loader, dataset, 16, seed, epoch, Runtime())
        features, _ = next(iter(loader))
        loader.stop()
        crow, cols = features[f"{item}__offsets"].tolist(), features[f"{item}__values"].tolist()
        return [tuple(cols[crow[r]:crow[r + 1]]) for r in range(len(crow) - 1)]

    batch = first_batch(0)
    assert len(batch) == 16 and set(batch) <= set(in_file)
    assert batch != in_file[:16], "the rows come in file order"
    assert first_batch(0) == batch and first_batch(1) != batch and first_batch(0, epoch=1) != batch


def test_merlin_itself_stays_unpatched(prepared_lists, monkeypatch):
    """The lists stream's fast flatten is the loader's own method: Merlin's modules (and NVTabular's Categorify
    in the same process) keep merlin.core.dispatch's functions, and the stream never calls the slow one."""
    from merlin.core import dispatch
    from merlin.dataloader import loader_base
    from merlin.io import shuffle

    stream = ListStream(FeatureSpec.from_yaml(prepared_lists), 32, Runtime(), seed=0)
    next(iter(stream.epoch(0)))
    for module in (dispatch, loader_base, shuffle):
        ours = [name for name, value in vars(module).items() if getattr(value, "__module__", "").startswith("training")]
        assert not ours, f"{module.__name__} was patched: {ours}"
    flatten = dispatch.flatten_list_column_values
    assert (flatten.__module__, flatten.__qualname__) == ("merlin.core.dispatch", "flatten_list_column_values")

    def slow(_):
        raise AssertionError("the lists stream used Merlin's per-item flatten")

    monkeypatch.setattr(dispatch, "flatten_list_column_values", slow)
    assert sum(1 for _ in stream.epoch(1)) > 2
    stream.close()


def test_the_fast_list_conversion_equals_merlins(prepared_lists):
    from merlin.dataloader.torch import Loader

    stream = ListStream(FeatureSpec.from_yaml(prepared_lists), 32, Runtime(), seed=0)
    loader = stream._loader(0)
    item = stream.item
    frame = pd.DataFrame({item: [np.array([5, 3, 9]), np.array([4]), np.array([7, 7, 8, 3])]})
    ours = loader._convert_df_to_tensors(frame.copy())
    merlins = Loader._convert_df_to_tensors(loader, frame.copy())
    loader.stop()
    stream.close()
    assert list(ours) == list(merlins) == [item]
    for got, want in zip(ours[item], merlins[item]):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()


def test_the_loader_internals_we_touch_exist_in_the_pinned_version():
    """LOADER_INTERNALS was read against MERLIN_PIN: another installed version means reading it again."""
    from merlin.dataloader.loader_base import ChunkQueue, LoaderBase
    from nvtabular.loader.torch import TorchAsyncItr

    for package in ("merlin-dataloader", "nvtabular"):
        assert importlib.metadata.version(package) == MERLIN_PIN, f"{package}: check LOADER_INTERNALS, then MERLIN_PIN"
    assert "put_wait" in ChunkQueue.__init__.__code__.co_varnames
    for name in ("make_tensors", "_convert_df_to_tensors"):
        assert callable(getattr(LoaderBase, name)) and name in LOADER_INTERNALS
    assert "device=device" not in inspect.getsource(TorchAsyncItr.__init__), "TorchAsyncItr passes its device on now"


def test_no_other_training_module_reaches_into_the_loader_or_global_rngs():
    root = Path(__file__).resolve().parents[2] / "training"
    words = ("_buff", "put_wait", "flatten_list_column_values", "np.random.seed", "shuffle=True")
    found = [(path.relative_to(root).as_posix(), word) for path in root.rglob("*.py")
             if path.name != "merlin_loader.py" for word in words if word in path.read_text()]
    assert not found, f"only training/data/merlin_loader.py touches the loader's internals: {found}"

"""The NeuMF task: the batch it chooses, its loss and micro-batches, and the full-ranking users it builds."""
import numpy as np
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training.models.neumf import NeuMF
from training.runtime import Runtime
from training.tasks.neumf import NeuMFTask, batch_size_for
from training.train import accumulate_gradients

from ...helpers import run_module
from .flags import Args


@pytest.mark.parametrize("positives, expected", [
    (95_000, 8192),          # ml-100k: a fixed 65,536 would give 8 steps per epoch
    (985_000, 65536),        # ml-1m: the batch the defaults were tuned with
    (19_800_000, 2**20),     # ml-20m: DLE's batch, the upper bound
    (500, 1024),             # a toy dataset: the lower bound
])
def test_batch_size_for_dataset_sizes(positives, expected):
    assert batch_size_for(positives, 4) == expected


def test_a_run_without_b_says_what_it_chose(prepared, tmp_path):
    result = run_module("training", "--data", prepared, "-e", "1", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if "chosen for" in line)
    positives = len(FeatureSpec.from_yaml(prepared).read("train"))
    used = batch_size_for(positives, 4) // 5 * 5  # whole positives with their 4 negatives
    assert f"-b {used} samples chosen for {positives:,} train positives: about {positives * 5 / used:.0f} steps" in line


@pytest.mark.parametrize("micro_batches", [2, 3])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_accumulated_gradients_equal_the_whole_batch(micro_batches, l2):
    """Slices of unequal size included: the gradient and loss are those of the whole batch's mean loss."""
    torch.manual_seed(0)
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    # 10 positives (columns), each with its item and 4 negatives, as TrainStream yields them
    batch = (torch.randint(0, 30, (10,)), torch.randint(0, 20, (5, 10)), torch.randint(0, 2, (5, 10)).float())
    task = NeuMFTask.__new__(NeuMFTask)
    task.args = Args(l2=l2)
    runtime = Runtime()
    whole, _ = accumulate_gradients(task, model, model, batch, 1, 0, runtime, runtime.grad_scaler())
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    accumulated, _ = accumulate_gradients(task, model, model, batch, micro_batches, 0, runtime, runtime.grad_scaler())
    assert accumulated.item() == pytest.approx(whole.item(), rel=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)
    assert len(task.micro_batches(batch, micro_batches)) == micro_batches


def test_full_ranking_users_have_train_validation_and_known_items_excluded(prepared):
    spec = FeatureSpec.from_yaml(prepared)
    task = NeuMFTask(Args(eval="full"), spec, Runtime(), print)
    data = task.ranking_set()
    n = spec.item_cardinality
    train = spec.read("train")
    validation = spec.read("validation").query("label == 1")
    known = spec.read("known") if "known" in spec.source_spec else train.iloc[:0]
    expected = np.unique(np.concatenate([frame["user_id"] * n + frame["item_id"] for frame in (train, validation, known)]))
    users = data.users.numpy()
    offsets, items = data.exclude.offsets.numpy(), data.exclude.items.numpy()
    got = np.unique(np.repeat(users, np.diff(offsets)) * n + items)
    assert np.array_equal(got, expected[np.isin(expected // n, users)])
    test = spec.read("test").query("label == 1")
    assert data.targets.items.tolist() == test["item_id"].tolist() and data.total_users == len(test)
    assert not np.isin(users * n + data.targets.items.numpy(), got).any()

"""The NeuMF task: the batch it chooses, its loss and micro-batches, and the full-ranking users it builds."""
import contextlib

import numpy as np
import pytest
import torch

from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from training.models.neumf import NeuMF
from training.runtime import Runtime
from training.tasks.neumf import NeuMFTask
from training.tasks.pairs import batch_for, batch_size_for
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


def test_batch_size_counts_each_positive_with_its_negatives():
    # 130,000 positives x (1 + 4) samples / 64 steps = 10,156 -> 2**13; with 5 negatives, 12,188 -> 2**14
    assert batch_size_for(130_000, 4) == 8192 and batch_size_for(130_000, 5) == 16384


def test_mf_takes_smaller_steps_about_1024_an_epoch():
    # ml-1m's train positives: 8,865,000 samples / 1024 -> 2**13
    def chosen_for(model):
        settings = Args(model=model, negative_samples=8)
        return batch_for(settings, 985_000, 1, NeuMFTask.steps_per_epoch(settings))

    assert (chosen_for("mf").per_rank, chosen_for("mf").total) == (8192 // 9, 8192 // 9 * 9)
    assert "about 1082 steps per epoch" in chosen_for("mf").notes[0]
    assert chosen_for("neumf").per_rank == 131072 // 9  # NeuMF's 64 steps


def test_a_given_batch_is_rounded_down_to_whole_positives_on_every_rank():
    chosen = batch_for(Args(model="neumf", negative_samples=4, batch_size=1000), 0, 2)
    assert (chosen.per_rank, chosen.total) == (100, 1000) and chosen.notes == ()
    chosen = batch_for(Args(model="neumf", negative_samples=4, batch_size=1004), 0, 2)
    assert (chosen.per_rank, chosen.total) == (100, 1000) and "rounded down" in chosen.notes[0]
    assert batch_for(Args(model="neumf", negative_samples=4, batch_size=10), 0, 2).per_rank == 1  # one positive a rank
    with pytest.raises(UserError, match="-b 9 is too small for 2 ranks x 5 samples per positive"):
        batch_for(Args(model="neumf", negative_samples=4, batch_size=9), 0, 2)


def test_a_run_without_b_says_what_it_chose(prepared, tmp_path):
    result = run_module("training", "--data", prepared, "-e", "1", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if "chosen for" in line)
    positives = len(FeatureSpec.from_yaml(prepared).read("train"))
    used = batch_size_for(positives, 8) // 9 * 9  # whole positives with their 8 negatives (the default)
    assert f"-b {used} samples chosen for {positives:,} train positives: about {positives * 9 / used:.0f} steps" in line


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


def test_the_loss_is_the_mean_bce_plus_l2_times_the_penalty_whatever_the_micro_batches():
    torch.manual_seed(0)
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    users, items, labels = torch.randint(0, 30, (10,)), torch.randint(0, 20, (5, 10)), torch.randint(0, 2, (5, 10)).float()
    task = NeuMFTask.__new__(NeuMFTask)
    task.args = Args(l2=0.1)
    expected = (torch.nn.functional.binary_cross_entropy_with_logits(model(users, items), labels)
                + 0.1 * model.embedding_penalty(users, items)).item()
    assert task.loss(model, model, (users, items, labels), 0)[0].item() == pytest.approx(expected, rel=1e-6)
    runtime = Runtime()
    total, _ = accumulate_gradients(task, model, model, (users, items, labels), 3, 0, runtime, runtime.grad_scaler())
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_every_micro_batch_but_the_last_runs_under_no_sync():
    """DDP's no_sync skips the gradient all-reduce: only the last slice's backward may all-reduce."""
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    batch = (torch.randint(0, 30, (10,)), torch.randint(0, 20, (5, 10)), torch.randint(0, 2, (5, 10)).float())
    task, events = NeuMFTask.__new__(NeuMFTask), []
    task.args = Args()
    loss = task.loss
    task.loss = lambda *args: events.append("loss") or loss(*args)

    @contextlib.contextmanager
    def no_sync():
        events.append("no_sync")
        yield

    runtime = Runtime()
    accumulate_gradients(task, model, model, batch, 3, 0, runtime, runtime.grad_scaler(), no_sync=no_sync)
    assert events == ["no_sync", "loss", "no_sync", "loss", "loss"]


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

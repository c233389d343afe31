"""The Mult-VAE task: micro-batches of whole users, the annealed KL weight it logs, what it recommends."""
import json

import pytest
import torch

from training.models.multvae import MultVAE, elbo_loss
from training.runtime import Runtime
from training.sparse import multi_hot
from training.tasks.multvae import MultVAETask, users_per_step_for
from training.train import accumulate_gradients

from ...helpers import run_module
from .flags import Args


@pytest.mark.parametrize("users, expected", [
    (483, 32),          # ml-latest-small: DLE's 500 would be one step an epoch
    (4_840, 128),       # ml-1m's training users: about 38 steps an epoch
    (116_677, 500),     # ml-20m: DLE's batch, the upper bound
    (40, 32),           # a toy dataset: the lower bound
])
def test_users_per_step_for_dataset_sizes(users, expected):
    assert users_per_step_for(users) == expected


def test_a_run_without_b_says_how_many_users_per_step_it_chose(prepared_lists, tmp_path):
    result = run_module("training", "--data", prepared_lists, "-e", "1", "--layers", "32", "8",
                        "--checkpoint_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if "chosen for" in line)
    users = json.loads((prepared_lists / "stats.json").read_text())["train_users"]
    chosen = users_per_step_for(users)
    assert f"-b {chosen} users chosen for {users:,} training users" in line
    assert json.loads(result.stdout.splitlines()[-1])["best_epoch"] == 0


def batch(users=7, n_items=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(n_items, generator=g)[: int(torch.randint(1, 8, (1,), generator=g))] for _ in range(users)]
    offsets = torch.tensor([0] + [len(r) for r in rows]).cumsum(0)
    return multi_hot(offsets, torch.cat(rows), n_items)


@pytest.mark.parametrize("micro_batches", [2, 3])
def test_accumulated_gradients_equal_the_whole_batch(micro_batches):
    """Whole users per slice, weighted by their share: the gradient of the batch's mean negative ELBO."""
    model = MultVAE(20, dims=(8, 4), dropout=0.0).eval()  # no dropout or sampling: the same forward twice
    task = MultVAETask.__new__(MultVAETask)
    task.args = Args(l2=0.01)
    runtime, x = Runtime(), batch()
    whole, parts = accumulate_gradients(task, model, model, x, 1, 5, runtime, runtime.grad_scaler())
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    accumulated, split_parts = accumulate_gradients(task, model, model, x, micro_batches, 5, runtime,
                                                    runtime.grad_scaler())
    assert accumulated.item() == pytest.approx(whole.item(), rel=1e-6)
    assert split_parts["nll"].item() == pytest.approx(parts["nll"].item(), rel=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    slices = task.micro_batches(x, micro_batches)
    assert len(slices) == micro_batches and sum(s.shape[0] for s, _ in slices) == x.shape[0]
    assert torch.equal(torch.cat([s.to_dense() for s, _ in slices]), x.to_dense())


def test_the_kl_weight_follows_the_optimizer_step():
    task = MultVAETask.__new__(MultVAETask)
    task.args = Args(total_anneal_steps=10, anneal_cap=0.2)
    assert [task.epoch_parts(step)["beta"] for step in (0, 1, 5, 50)] == pytest.approx([0.0, 0.1, 0.2, 0.2])


def test_only_items_a_training_user_has_are_candidates():
    counts = torch.tensor([0, 0, 0, 3, 0, 1])
    assert MultVAETask.candidates(counts, 3).tolist() == [False, False, False, True, False, True]


@pytest.mark.parametrize("micro_batches", [1, 3])
def test_accumulated_loss_and_parts_are_the_batch_elbo(micro_batches):
    model = MultVAE(20, dims=(8, 4), dropout=0.0).eval()
    task = MultVAETask.__new__(MultVAETask)
    task.args = Args(l2=0.01)
    runtime, x = Runtime(), batch()
    expected, parts = elbo_loss(model, model, x, task.beta(5), 0.01)
    total, found = accumulate_gradients(task, model, model, x, micro_batches, 5, runtime, runtime.grad_scaler())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert found["nll"].item() == pytest.approx(parts["nll"].item(), rel=1e-6)
    assert found["kl"].item() == pytest.approx(parts["kl"].item(), rel=1e-6)

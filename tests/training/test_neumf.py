"""NeuMF shapes and DeepLearningExamples' initialisation."""
import math

import pytest
import torch

from training.models.neumf import NeuMF


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp"])
def test_scores_one_logit_per_pair(variant):
    model = NeuMF(50, 40, mf_dim=8, mlp_layer_sizes=(16, 8, 4), dropout=0.2, variant=variant)
    out = model(torch.randint(0, 50, (33,)), torch.randint(0, 40, (33,)))
    assert out.shape == (33,)
    assert hasattr(model, "mf_user_embed") == (variant != "mlp")
    assert hasattr(model, "mlp") == (variant != "gmf")


def test_initialisation_statistics():
    torch.manual_seed(0)
    model = NeuMF(20000, 10000, mf_dim=64, mlp_layer_sizes=(256, 256, 128, 64))
    emb = model.mf_user_embed.weight
    assert abs(emb.mean().item()) < 1e-3 and abs(emb.std().item() - 0.01) < 1e-3
    first = model.mlp[0].weight  # Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    limit = math.sqrt(6 / (256 + 256))
    assert first.abs().max().item() <= limit and first.abs().max().item() > 0.95 * limit
    assert abs(first.std().item() - limit / math.sqrt(3)) < 0.02 * limit
    final = model.final.weight  # LeCun uniform: a = sqrt(3 / fan_in)
    assert final.abs().max().item() <= math.sqrt(3 / (64 + 64))


def test_rejects_odd_first_layer():
    with pytest.raises(ValueError, match="even"):
        NeuMF(5, 5, mlp_layer_sizes=(15, 8))


def test_cpu_dropout_keeps_the_expectation_and_rate():
    from training.models.neumf import dropout

    torch.manual_seed(0)
    x = torch.ones(1000, 500, requires_grad=True)
    y = dropout(x, 0.5, training=True)
    assert abs((y == 0).float().mean().item() - 0.5) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.01 and set(y.unique().tolist()) == {0.0, 2.0}
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient flows through kept units only, scaled
    assert torch.equal(dropout(x, 0.5, training=False), x)
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.5, training=True), y)  # seeded: resume stays exact


def test_embedding_penalty_is_the_batch_mean_of_the_used_rows_squared_norms():
    model = NeuMF(5, 6, mf_dim=3, mlp_layer_sizes=(4, 2), dropout=0.0)
    users, items = torch.tensor([0, 2, 2]), torch.tensor([5, 1, 1])
    expected = sum((table.weight[ids] ** 2).sum() / 3 for table, ids in (
        (model.mf_user_embed, users), (model.mf_item_embed, items),
        (model.mlp_user_embed, users), (model.mlp_item_embed, items)))
    assert torch.allclose(model.embedding_penalty(users, items), expected)
    # rows no batch uses get no gradient from it
    model.embedding_penalty(users, items).backward()
    assert model.mf_user_embed.weight.grad[[1, 3, 4]].abs().sum() == 0

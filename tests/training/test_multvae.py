"""Mult-VAE: the sparse input path against dense algebra, the loss terms, the KL annealing, the registry."""
import pytest
import torch

from contract.errors import UserError
from training.models.multvae import MultVAE, anneal, elbo_loss, kl_divergence, multinomial_nll
from training.models.neumf import NeuMF
from training.sparse import multi_hot
from training.tasks import build_model


def batch(rows=6, items=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    lists = [torch.randperm(items, generator=g)[: int(torch.randint(1, 8, (1,), generator=g))] for _ in range(rows)]
    offsets = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    return multi_hot(offsets, torch.cat(lists), items)


def test_csr_batch_is_the_multi_hot_matrix():
    x = batch()
    dense = x.to_dense()
    assert set(dense.unique().tolist()) <= {0.0, 1.0} and dense.shape == (6, 20)
    for r in range(6):  # columns sorted within a row, as CSR expects
        cols = x.col_indices()[x.crow_indices()[r]:x.crow_indices()[r + 1]]
        assert torch.equal(cols, cols.sort().values)


def test_encoder_is_the_dense_product_of_the_l2_normalised_input():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(16, 4), dropout=0.5).eval()
    x = batch()
    dense = x.to_dense()
    normalised = dense / dense.norm(dim=1, keepdim=True)
    h = torch.tanh(normalised @ model.input_weight + model.input_bias)
    expected = model.to_latent(h)
    mean, logvar = model.encode(x)
    assert torch.allclose(torch.cat([mean, logvar], dim=1), expected, atol=1e-5)
    doubled = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), 2 * x.values(), x.shape)
    assert torch.allclose(model.encode(doubled)[0], mean, atol=1e-5), "the input is not L2-normalised"
    logits, m, _ = model(x)
    assert logits.shape == (6, 20) and torch.equal(m, mean)
    assert torch.equal(model(x)[0], logits), "evaluation must use the mean, without dropout"


def test_training_mode_drops_inputs_and_samples_the_latent():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(16, 4), dropout=0.5).train()
    x = batch()
    a, b = model(x)[0], model(x)[0]
    assert not torch.equal(a, b)
    model.dropout = 0.0
    means = {tuple(model.encode(x)[0].flatten().tolist()) for _ in range(3)}
    assert len(means) == 1, "without dropout the encoder is deterministic"


def test_loss_terms():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(8,), dropout=0.0)
    x = batch()
    logits = torch.randn(6, 20)
    expected = -(torch.log_softmax(logits, 1) * x.to_dense()).sum(1).mean()
    assert torch.allclose(multinomial_nll(logits, x), expected)
    mean, logvar = torch.randn(6, 3), torch.randn(6, 3)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(kl_divergence(mean, logvar), torch.distributions.kl_divergence(q, p).sum(1).mean(), atol=1e-5)
    model.eval()  # z = mean: every term is deterministic
    loss0, parts = elbo_loss(model, model, x, beta=0.0, lam=0.0)
    loss1, _ = elbo_loss(model, model, x, beta=0.3, lam=0.0)
    loss2, _ = elbo_loss(model, model, x, beta=0.3, lam=0.01)
    assert torch.allclose(loss0, parts["nll"]) and torch.allclose(loss1, parts["nll"] + 0.3 * parts["kl"])
    l2 = sum((w ** 2).sum() for w in (model.input_weight, *(layer.weight for layer in model.decoder)))
    assert torch.allclose(loss2 - loss1, 0.01 * l2, rtol=1e-4)


def test_kl_weight_is_annealed_linearly_then_capped():
    assert anneal(0, 1000, 0.2) == 0.0
    assert anneal(100, 1000, 0.2) == pytest.approx(0.1)
    assert anneal(150, 1000, 0.2) == pytest.approx(0.15)
    assert anneal(5000, 1000, 0.2) == 0.2
    assert anneal(7, 0, 0.3) == 0.3  # no annealing: the cap from the start


def test_gradients_reach_every_weight():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(16, 4))
    loss, _ = elbo_loss(model, model, batch(), beta=0.2, lam=0.01)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_one_registry_builds_every_family_and_names_the_unknown():
    sizes = {"users": 10, "items": 20}
    assert isinstance(build_model({"variant": "multvae", "dims": [16, 4], "activation": "tanh"}, sizes), MultVAE)
    assert build_model({"variant": "multvae", "dims": [16, 4], "activation": "tanh"}, sizes, 0.3).dropout == 0.3
    assert build_model({"variant": "multvae", "dims": [16, 4], "activation": "relu"}, sizes).activation == "relu"
    assert build_model({"variant": "neumf", "factors": 8, "layers": [4, 2]}, sizes, 0.2).dropout == 0.2
    assert isinstance(build_model({"variant": "gmf", "factors": 8, "layers": [2]}, sizes), NeuMF)
    with pytest.raises(UserError, match="unknown model 'ease'"):
        build_model({"variant": "ease"}, sizes)


def test_layers_mirror_dims_and_a_deeper_encoder_runs():
    model = MultVAE(20, dims=(8, 6, 4), dropout=0.0).eval()
    assert model.input_weight.shape == (20, 8) and model.input_bias.shape == (8,)
    assert [tuple(layer.weight.shape) for layer in model.encoder] == [(6, 8)]
    assert tuple(model.to_latent.weight.shape) == (8, 6)
    assert [tuple(layer.weight.shape) for layer in model.decoder] == [(6, 4), (8, 6), (20, 8)]
    x = batch(rows=30)  # more users than items
    logits, mean, _ = model(x)
    dense = x.to_dense()
    h = torch.tanh(model.encoder[0](torch.tanh(dense / dense.norm(dim=1, keepdim=True) @ model.input_weight
                                               + model.input_bias)))
    assert logits.shape == (30, 20) and torch.allclose(mean, model.to_latent(h)[:, :4], atol=1e-5)


def test_initialisation_is_glorot_uniform_with_small_normal_biases():
    torch.manual_seed(0)
    model = MultVAE(3000, dims=(600, 200), dropout=0.5)
    limit = (6 / (3000 + 600)) ** 0.5
    w = model.input_weight
    assert w.abs().max().item() <= limit and w.min().item() < -0.95 * limit and w.max().item() > 0.95 * limit
    for name, bias in [("input", model.input_bias), ("to_latent", model.to_latent.bias),
                       *((f"decoder.{i}", layer.bias) for i, layer in enumerate(model.decoder))]:
        assert abs(bias.mean().item()) < 5e-4 and abs(bias.std().item() - 0.001) < 3e-4, name


def test_input_dropout_keeps_the_expectation():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(4,), dropout=0.5)  # no hidden layer: the encoding is linear in the input
    with torch.no_grad():
        model.input_weight.fill_(1.0)
        model.input_bias.zero_()
    x = batch(rows=8)
    expected = model.eval().encode(x)[0]
    model.train()
    draws = torch.stack([model.encode(x)[0] for _ in range(2000)])
    assert not torch.equal(draws[0], expected)
    torch.testing.assert_close(draws.mean(0), expected, atol=0.1, rtol=0)


def test_the_latent_sample_is_the_mean_plus_the_std_times_standard_noise():
    torch.manual_seed(0)
    model = MultVAE(20, dims=(8, 4), dropout=0.0).train()
    with torch.no_grad():
        model.to_latent.bias[4:] = 2.0  # log-variance about 2: a std far from 1
    seen, decode = [], model.decode
    model.decode = lambda z: seen.append(z) or decode(z)
    _, mean, logvar = model(batch(rows=500))
    noise = (seen[0] - mean) / torch.exp(0.5 * logvar)
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1) < 0.05


def test_one_anneal_step_starts_at_zero():
    assert anneal(0, 1, 0.2) == 0.0 and anneal(1, 1, 0.2) == 0.2

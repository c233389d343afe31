"""NeuMF shapes and DeepLearningExamples' initialisation."""
import math

import pytest
import torch

from training.models.neumf import NeuMF


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp", "mf"])
def test_scores_one_logit_per_pair(variant):
    model = NeuMF(50, 40, mf_dim=8, mlp_layer_sizes=(16, 8, 4), dropout=0.2, variant=variant)
    out = model(torch.randint(0, 50, (33,)), torch.randint(0, 40, (33,)))
    assert out.shape == (33,)
    names = set(model.state_dict())
    assert ("mf_user_embed.weight" in names) == ("mf_item_embed.weight" in names) == (variant != "mlp")
    assert ("mlp_user_embed.weight" in names) == ("mlp.0.weight" in names) == (variant not in ("gmf", "mf"))


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp", "mf"])
def test_scores_as_deeplearningexamples_model_does_from_its_state_dict(variant):
    """DLE's NeuMF, written out: four tables, cat, Linear+ReLU, final Linear over cat(GMF, MLP).
    GMF factors (8) and the MLP half (6) differ, so a table split at the wrong column shows."""
    torch.manual_seed(0)
    model = NeuMF(50, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.0, variant=variant)
    w = model.state_dict()
    users, items = torch.randint(0, 50, (64,)), torch.randint(0, 40, (64,))
    heads = []
    if variant != "mlp":
        heads.append(w["mf_user_embed.weight"][users] * w["mf_item_embed.weight"][items])
    if variant not in ("gmf", "mf"):
        x = torch.cat([w["mlp_user_embed.weight"][users], w["mlp_item_embed.weight"][items]], dim=1)
        for i in range(2):
            x = torch.relu(x @ w[f"mlp.{i}.weight"].T + w[f"mlp.{i}.bias"])
        heads.append(x)
    expected = (torch.cat(heads, dim=1) @ w["final.weight"].T + w["final.bias"]).squeeze(-1)
    assert torch.allclose(model(users, items), expected, atol=1e-6)
    # and back: a state_dict with DLE's names loads into the same scores
    fresh = NeuMF(50, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.0, variant=variant)
    fresh.load_state_dict({k: v.clone() for k, v in w.items()})
    assert torch.equal(fresh(users, items), model(users, items))


def test_initialisation_statistics():
    torch.manual_seed(0)
    model = NeuMF(20000, 10000, mf_dim=64, mlp_layer_sizes=(256, 256, 128, 64))
    emb = model.state_dict()["mf_user_embed.weight"]
    assert abs(emb.mean().item()) < 1e-3 and abs(emb.std().item() - 0.01) < 1e-3
    first = model.mlp[0].weight  # Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    limit = math.sqrt(6 / (256 + 256))
    assert first.abs().max().item() <= limit and first.abs().max().item() > 0.95 * limit
    assert abs(first.std().item() - limit / math.sqrt(3)) < 0.02 * limit
    final = model.final.weight  # LeCun uniform: a = sqrt(3 / fan_in)
    assert final.abs().max().item() <= math.sqrt(3 / (64 + 64))


def test_rejects_odd_first_layer_and_an_mlp_without_layers():
    with pytest.raises(ValueError, match="even"):
        NeuMF(5, 5, mlp_layer_sizes=(15, 8))
    with pytest.raises(ValueError, match="two layer sizes"):
        NeuMF(5, 5, mlp_layer_sizes=(16,))
    NeuMF(5, 5, mlp_layer_sizes=(2,), variant="gmf")  # a GMF has no MLP to size


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
    w = model.state_dict()
    expected = sum((w[table][ids] ** 2).sum() / 3 for table, ids in (
        ("mf_user_embed.weight", users), ("mf_item_embed.weight", items),
        ("mlp_user_embed.weight", users), ("mlp_item_embed.weight", items)))
    assert torch.allclose(model.embedding_penalty(users, items), expected)
    # rows no batch uses get no gradient from it
    model.embedding_penalty(users, items).backward()
    assert model.user_embed.grad[[1, 3, 4]].abs().sum() == 0 and model.user_embed.grad[[0, 2]].abs().sum() > 0


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp", "mf"])
def test_score_grid_is_forward_over_every_pair(variant, monkeypatch):
    import training.models.neumf as neumf

    monkeypatch.setattr(neumf, "GRID_PAIRS", 50)  # slices of 2 users x 23 items: the last slice is short
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.5, variant=variant).eval()
    users, items = torch.tensor([3, 0, 29, 7, 7]), torch.randperm(40)[:23]
    grid = model.score_grid(users, items)
    pairs = model(users.repeat_interleave(len(items)), items.repeat(len(users))).view(len(users), len(items))
    assert grid.shape == (5, 23) and torch.allclose(grid, pairs, atol=1e-6)


@pytest.mark.parametrize("variant", ["neumf", "gmf", "mlp", "mf"])
def test_items_in_rows_score_against_each_column_user(variant):
    """users (P,) with items (T, P): the same logits as the flat pairs (users repeated T times)."""
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.0, variant=variant)
    users, items = torch.randint(0, 30, (7,)), torch.randint(0, 40, (5, 7))
    tiled = model(users, items)
    flat = model(users.repeat(5), items.reshape(-1)).view(5, 7)
    assert tiled.shape == (5, 7) and torch.allclose(tiled, flat, atol=1e-6)


def test_every_embedding_table_starts_normal_with_std_0_01():
    torch.manual_seed(0)
    state = NeuMF(2000, 1500, mf_dim=16, mlp_layer_sizes=(32, 8)).state_dict()
    for name in ("mf_user_embed.weight", "mf_item_embed.weight", "mlp_user_embed.weight", "mlp_item_embed.weight"):
        assert abs(state[name].mean().item()) < 1e-3 and abs(state[name].std().item() - 0.01) < 1e-3, name


def test_training_mode_applies_dropout_after_every_mlp_layer(monkeypatch):
    import training.models.neumf as neumf

    seen = []
    monkeypatch.setattr(neumf, "dropout", lambda x, p, training: seen.append((p, training)) or x)
    model = NeuMF(5, 6, mf_dim=2, mlp_layer_sizes=(4, 4, 2), dropout=0.3)
    model.train()(torch.tensor([0, 1]), torch.tensor([2, 3]))
    model.eval()(torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert seen == [(0.3, True), (0.3, True), (0.3, False), (0.3, False)]


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_cpu_dropout_rate_is_p_rounded_to_a_256th(p):
    from training.models.neumf import dropout

    torch.manual_seed(0)
    rate = (dropout(torch.ones(2**24), p, training=True) == 0).double().mean().item()  # standard error < 1.3e-4
    assert abs(rate - round(p * 256) / 256) < 1e-3


def test_a_state_dict_with_missing_unexpected_or_resized_tables_is_refused():
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    state = model.state_dict()
    with pytest.raises(RuntimeError, match="Missing key.*item_embed"):
        model.load_state_dict({k: v for k, v in state.items() if k != "mlp_item_embed.weight"})
    with pytest.raises(RuntimeError, match="Unexpected key.*extra"):
        model.load_state_dict({**state, "extra": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="size mismatch for user_embed"):
        model.load_state_dict({**state, "mf_user_embed.weight": torch.zeros(30, 5)})


def test_mf_is_the_dot_product_plus_a_bias_and_its_head_never_learns():
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, variant="mf")
    users, items = torch.randint(0, 30, (64,)), torch.randint(0, 40, (64,))
    w = model.state_dict()
    expected = (w["mf_user_embed.weight"][users] * w["mf_item_embed.weight"][items]).sum(-1) + w["final.bias"]
    assert torch.allclose(model(users, items), expected, atol=1e-6)
    before = model.user_embed.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    torch.nn.functional.binary_cross_entropy_with_logits(model(users, items), torch.ones(64)).backward()
    optimizer.step()
    assert torch.equal(model.final.weight, torch.ones(1, 8)) and not torch.equal(model.user_embed, before)
    # rebuilt from its checkpoint (resume, evaluation, serving), the head is still fixed
    fresh = NeuMF(30, 40, mf_dim=8, variant="mf")
    fresh.load_state_dict(model.state_dict())
    assert not fresh.final.weight.requires_grad and fresh.final.bias.requires_grad


MODELS = [("neumf", "dot"), ("gmf", "dot"), ("mlp", "dot"), ("mf", "dot"), ("gmf", "cosine"), ("mf", "cosine")]


@pytest.mark.parametrize("variant, similarity", MODELS)
def test_shared_negatives_score_as_forward_over_each_pair(variant, similarity):
    """forward(users, items, negatives): column 0 each user's item, then every user against the shared items,
    each (user, item) pair as forward() scores it alone; `grid` and `score_grid` are those columns."""
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.5, variant=variant,
                  similarity=similarity).eval()
    users, items, negatives = torch.tensor([3, 0, 29, 7, 7]), torch.tensor([1, 5, 5, 39, 0]), torch.randperm(40)[:23]
    scores = model(users, items, negatives)
    pairs = model(users.repeat_interleave(len(negatives)), negatives.repeat(len(users))).view(len(users), -1)
    assert scores.shape == (5, 24)
    torch.testing.assert_close(scores[:, 0], model(users, items), rtol=0, atol=0)
    torch.testing.assert_close(scores[:, 1:], pairs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.grid(users, negatives), pairs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.score_grid(users, negatives), pairs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["neumf", "mlp"])
def test_the_training_grid_has_dropout_and_gradients(variant):
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, mlp_layer_sizes=(12, 8, 4), dropout=0.5, variant=variant).train()
    users, negatives = torch.tensor([3, 0, 29]), torch.arange(40)
    grid = model.grid(users, negatives)
    assert not torch.allclose(grid, model.eval().grid(users, negatives)), "no dropout in training mode"
    shared = model.train()(users, users, negatives)[:, 1:]  # training's shared negatives: dropout too
    assert not torch.allclose(shared, model.eval()(users, users, negatives)[:, 1:]), "no dropout on shared negatives"
    model.train()
    grid.sum().backward()
    assert model.item_embed.grad.abs().sum() > 0 and model.mlp[-1].weight.grad.abs().sum() > 0
    torch.manual_seed(1)
    assert torch.equal(model.train().score_grid(users, negatives), model.eval().score_grid(users, negatives)), \
        "score_grid dropped units"


@pytest.mark.parametrize("variant", ["gmf", "mf"])
def test_cosine_scores_are_the_cosine_of_the_head_weighted_user_and_the_item_with_no_bias(variant):
    torch.manual_seed(0)
    model = NeuMF(30, 40, mf_dim=8, variant=variant, similarity="cosine")
    if variant == "gmf":  # a learnt head, not ones: the user vector is weighted by it
        torch.nn.init.uniform_(model.final.weight, -1, 1)
    w = model.state_dict()
    users, items = torch.randint(0, 30, (64,)), torch.randint(0, 40, (64,))
    u, i = w["mf_user_embed.weight"][users] * w["final.weight"], w["mf_item_embed.weight"][items]
    expected = (u * i).sum(-1) / (u.norm(dim=-1) * i.norm(dim=-1))
    torch.testing.assert_close(model(users, items), expected, rtol=1e-5, atol=1e-6)
    assert model(users, items).abs().max() <= 1 + 1e-6
    assert not model.final.bias.requires_grad and w["final.bias"].item() == 0
    assert model.final.weight.requires_grad == (variant == "gmf")


def test_cosine_is_for_mf_and_gmf_and_an_architecture_without_it_is_the_dot_product():
    from training.tasks import build_model

    for variant in ("neumf", "mlp"):
        with pytest.raises(ValueError, match="mf and gmf only"):
            NeuMF(5, 5, mlp_layer_sizes=(4, 2), variant=variant, similarity="cosine")
    sizes = {"users": 5, "items": 6}
    assert build_model({"variant": "mf", "factors": 4, "layers": [2]}, sizes).similarity == "dot"
    assert build_model({"variant": "mf", "factors": 4, "layers": [2], "similarity": "cosine"}, sizes).similarity == "cosine"

"""The pairs families' losses (`training/losses.py`) against values worked out by hand, the log-Q correction, the
negative samplers, the task's loss on per-positive and shared negatives, and short runs of every loss."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from contract.errors import UserError
from training import losses, recommend
from training import train as one_loop
from training.args import parser
from training.data.negatives import PopularitySampler, UniformSampler, make_sampler
from training.data.pairs import SharedBatch
from training.models.neumf import NeuMF
from training.runtime import Runtime
from training.tasks import registered
from training.tasks.neumf import NeuMFTask
from training.tasks.pairs import PairsTask, batch_for
from training.train import accumulate_gradients

from .tasks.flags import Args


def softplus(x):
    return math.log1p(math.exp(x))


# ---- each loss by hand ----------------------------------------------------------------------------------
def test_bce_is_the_mean_cross_entropy_of_every_pair_the_positive_labelled_one():
    scores = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -3.0]])
    # -log sigmoid(s) for the positives, -log(1 - sigmoid(s)) = log(1 + e^s) for the negatives
    expected = (softplus(-2) + softplus(-1) + softplus(0.5) + softplus(-0.0) + softplus(1) + softplus(-3)) / 6
    assert losses.bce(scores).item() == pytest.approx(expected, rel=1e-6)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # labels given win (DLE's batches carry theirs)
    expected = (softplus(-2) + softplus(-1) + softplus(-0.5) + softplus(0) + softplus(1) + softplus(-3)) / 6
    assert losses.bce(scores, labels).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_is_the_mean_over_each_positives_negatives_of_minus_log_sigmoid_of_the_difference():
    scores = torch.tensor([[1.0, 0.0, 2.0], [0.5, -0.5, 0.5]])
    # differences 1, -1 and 1, 0; -log sigmoid(d) = log(1 + e^-d)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1)) + math.log(1 + math.exp(-1)) + math.log(2)) / 4
    assert losses.bpr(scores).item() == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_is_the_cross_entropy_of_the_positive_among_its_row():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    expected = (-2 + math.log(math.e**2 + math.e + 1) + -0 + math.log(2 + math.e**3)) / 2
    assert losses.sampled_softmax(scores).item() == pytest.approx(expected, rel=1e-6)
    # temperature 0.5: the scores doubled
    expected = (-4 + math.log(math.e**4 + math.e**2 + 1) + math.log(2 + math.e**6)) / 2
    assert losses.sampled_softmax(scores, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    # a negative that is the positive's own item is left out of the sum: row 0's second (score 0)
    valid = torch.tensor([[True, False], [True, True]])
    expected = (-2 + math.log(math.e**2 + math.e) + math.log(2 + math.e**3)) / 2
    assert losses.sampled_softmax(scores, valid=valid).item() == pytest.approx(expected, rel=1e-6)


def test_log_q_of_a_uniform_sampler_changes_nothing():
    torch.manual_seed(0)
    scores = torch.randn(16, 9)
    plain = losses.sampled_softmax(scores)
    for log_q in (torch.full((16, 9), -math.log(3706)), torch.full((1, 1), 5.0)):
        torch.testing.assert_close(losses.sampled_softmax(scores, log_q), plain)
    # and through the task: a uniform sampler's correction is the same constant for every item
    sampler = UniformSampler(300, "cpu")
    items = torch.randint(0, 300, (16, 9))
    torch.testing.assert_close(losses.sampled_softmax(scores, sampler.log_q[items]), plain)


def test_log_q_of_a_popularity_sampler_is_subtracted_from_every_logit():
    scores = torch.tensor([[1.0, 1.0, 1.0]])  # equal scores: without the correction, log 3
    q = torch.tensor([[0.5, 0.4, 0.1]])  # the positive popular, the second negative rare
    # o = s - log q: 1 - log .5, 1 - log .4, 1 - log .1; L = -o_0 + log sum exp(o) = log(1/.5 + 1/.4 + 1/.1) - log(1/.5)
    expected = math.log(2 + 2.5 + 10) - math.log(2)
    got = losses.sampled_softmax(scores, q.log())
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert losses.sampled_softmax(scores).item() == pytest.approx(math.log(3), rel=1e-6)
    # a rarely drawn negative counts for more of the catalogue it stands for: the loss rises with 1/q
    assert losses.sampled_softmax(scores, torch.tensor([[0.5, 0.4, 0.01]]).log()) > got


def test_cosine_contrastive_is_simplex_eq_4():
    similarity = torch.tensor([[0.8, 0.95, 0.5, 0.91], [1.0, -1.0, 0.0, 0.2]])
    # row 0: (1 - 0.8) + 150 / 3 * (0.05 + 0 + 0.01) = 3.2; row 1: 0 + 0 (every negative below the margin)
    assert losses.cosine_contrastive(similarity, 0.9, 150.0).item() == pytest.approx(3.2 / 2, rel=1e-5)
    # margin 0: row 1's 0.2 counts, 150 / 3 * 0.2 = 10; row 0: 0.2 + 50 * (0.95 + 0.5 + 0.91) = 118.2
    assert losses.cosine_contrastive(similarity, 0.0, 150.0).item() == pytest.approx((118.2 + 10) / 2, rel=1e-5)
    # a masked negative adds nothing but still counts in N: row 0 without 0.95 -> 0.2 + 50 * 0.01 = 0.7
    valid = torch.tensor([[False, True, True], [True, True, True]])
    assert losses.cosine_contrastive(similarity, 0.9, 150.0, valid).item() == pytest.approx(0.7 / 2, rel=1e-5)


def test_the_table_names_every_loss_and_the_flag_offers_them():
    assert set(losses.LOSSES) == {"bce", "bpr", "softmax", "simplex"}
    assert "--loss {bce,bpr,softmax,simplex}" in " ".join(parser().format_help().split())


# ---- the samplers --------------------------------------------------------------------------------------
def test_popularity_negatives_follow_counts_to_the_power_and_are_seeded():
    counts = torch.tensor([0, 1, 4, 16, 81, 0, 256])
    sampler = PopularitySampler(counts, 0.75)
    weights = np.array([0, 1, 4, 16, 81, 0, 256], dtype=float) ** 0.75
    q = weights / weights.sum()
    gen = torch.Generator().manual_seed(7)
    draws = sampler.draw((400, 500), gen)
    assert draws.shape == (400, 500) and draws.dtype == torch.int64
    freq = np.bincount(draws.reshape(-1).numpy(), minlength=7) / draws.numel()
    assert freq[0] == freq[5] == 0, "an item without train positives was drawn"
    sigma = np.sqrt(q * (1 - q) / draws.numel())
    assert np.all(np.abs(freq - q) < 5 * sigma + 1e-12), (freq, q)
    np.testing.assert_allclose(sampler.log_q.exp().numpy(), q, rtol=1e-6)
    assert torch.equal(sampler.draw((400, 500), torch.Generator().manual_seed(7)), draws), "not reproducible"
    assert not torch.equal(sampler.draw((400, 500), torch.Generator().manual_seed(8)), draws)


def test_uniform_negatives_are_the_draws_of_before():
    """The default sampler draws exactly what TrainStream drew before samplers existed: runs repeat."""
    sampler = make_sampler("uniform", torch.zeros(300))
    assert torch.equal(sampler.draw((8, 100), torch.Generator().manual_seed(3)),
                       torch.randint(0, 300, (8, 100), generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(sampler.log_q, torch.full((300,), -math.log(300)))
    with pytest.raises(UserError, match="no item has a train positive"):
        make_sampler("popularity", torch.zeros(5, dtype=torch.int64))


# ---- the task's loss -----------------------------------------------------------------------------------
def task_for(**flags):
    task = NeuMFTask.__new__(NeuMFTask)
    task.args = Args(**flags)
    task.counts = 1 + torch.arange(20) % 7  # train positives per item: the popularity sampler's q
    return task


def batches(n_items=20, positives=10, negatives=6):
    torch.manual_seed(0)
    users, items = torch.randint(0, 30, (positives,)), torch.randint(1, n_items, (positives,))
    items[3] = 6  # a positive that the shared draw holds too: an accidental hit
    per_positive = torch.cat([items[None], torch.randint(0, n_items, (negatives, positives))])
    per_positive[2, 3] = items[3]
    labels = torch.cat([torch.ones(1, positives), torch.zeros(negatives, positives)])
    shared = SharedBatch(users, items, torch.tensor([6, 0, 13, 2, 6, 19, 7]))
    return (users, per_positive, labels), shared


def reference(task, model, batch) -> float:
    """The task's loss written out from the model's per-pair forward and `losses`, shapes and masks by hand."""
    name = task.args.loss
    if isinstance(batch, SharedBatch):
        users, items, negatives = batch
        columns = torch.cat([items[:, None], negatives[None, :].expand(len(items), -1)], dim=1)
    else:
        users, columns, _ = batch
        columns = columns.T.contiguous()
    scores = torch.stack([model(users, columns[:, k]) for k in range(columns.shape[1])], dim=1)
    valid = columns[:, 1:] != columns[:, :1]
    if name == "bce":
        value = losses.bce(scores)
    elif name == "bpr":
        value = losses.bpr(scores)
    elif name == "softmax":
        value = losses.sampled_softmax(scores, task.sampler.log_q[columns], valid, task.args.temperature)
    else:
        similarity = scores if model.similarity == "cosine" else torch.tanh(scores)
        value = losses.cosine_contrastive(similarity, task.args.margin, task.args.negative_weight, valid)
    return value.item()


LOSS_FLAGS = [{"loss": "bce"}, {"loss": "bpr"}, {"loss": "softmax", "negative_sampler": "popularity", "temperature": 0.5},
              {"loss": "simplex", "margin": 0.2, "negative_weight": 3.0}]


@pytest.mark.parametrize("variant", ["neumf", "mf", "gmf"])
@pytest.mark.parametrize("flags", LOSS_FLAGS, ids=lambda f: f["loss"])
def test_the_task_loss_is_the_chosen_loss_of_each_positive_and_its_negatives(flags, variant):
    flags = {"negative_sampler": "uniform", "popularity_exponent": 0.75, "temperature": 1.0, "margin": 0.9,
             "negative_weight": 150.0, **flags}
    task = task_for(**flags)
    similarity = "cosine" if flags["loss"] == "simplex" and variant != "neumf" else "dot"
    torch.manual_seed(1)
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0, variant=variant, similarity=similarity)
    for batch in batches():
        assert task.loss(model, model, batch, 0)[0].item() == pytest.approx(reference(task, model, batch), rel=1e-5)


@pytest.mark.parametrize("flags", LOSS_FLAGS, ids=lambda f: f["loss"])
@pytest.mark.parametrize("variant", ["neumf", "mf"])
def test_accumulated_shared_negative_batches_give_the_whole_batchs_gradient(flags, variant):
    """Slices of the positives, each with all the shared negatives, --l2 included: the whole batch's gradient."""
    flags = {"negative_sampler": "uniform", "popularity_exponent": 0.75, "temperature": 1.0, "margin": 0.9,
             "negative_weight": 150.0, "l2": 0.1, **flags}
    task = task_for(**flags)
    torch.manual_seed(0)
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0, variant=variant,
                  similarity="cosine" if variant == "mf" and flags["loss"] == "simplex" else "dot")
    _, batch = batches()
    runtime = Runtime()
    whole, _ = accumulate_gradients(task, model, model, batch, 1, 0, runtime, runtime.grad_scaler())
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    accumulated, _ = accumulate_gradients(task, model, model, batch, 3, 0, runtime, runtime.grad_scaler())
    assert accumulated.item() == pytest.approx(whole.item(), rel=1e-5)
    for name, grad in expected.items():
        # atol: softmax's gradient of the final bias is 0 but for rounding (a shift of every logit)
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6, msg=name)
    slices = task.micro_batches(batch, 3)
    assert [len(s.users) for s, _ in slices] == [4, 4, 2] and all(s.negatives is batch.negatives for s, _ in slices)
    assert sum(share for _, share in slices) == pytest.approx(1.0)
    assert task.batch_units(batch) == 10 * (1 + 7)  # a sample is a scored pair: each positive and the shared 7


def test_l2_with_shared_negatives_is_the_mean_over_every_scored_pairs_rows():
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    _, (users, items, negatives) = batches()
    w = model.state_dict()
    rows = {side: torch.cat([w[f"mf_{side}_embed.weight"], w[f"mlp_{side}_embed.weight"]], dim=1) for side in ("user", "item")}
    # each of the P x (1 + N) pairs: its user's row and its item's row
    pair_items = torch.cat([items[:, None], negatives[None, :].expand(len(items), -1)], dim=1)
    expected = (rows["user"][users] ** 2).sum(-1).mean() + (rows["item"][pair_items] ** 2).sum(-1).mean()
    torch.testing.assert_close(model.embedding_penalty(users, items, negatives), expected)


# ---- batch sizing ----------------------------------------------------------------------------------------
def test_with_shared_negatives_a_positive_is_one_plus_n_samples():
    chosen = batch_for(Args(model="mf", negative_samples=8, shared_negatives=1000, batch_size=10_010), 0, 2)
    assert (chosen.per_rank, chosen.total) == (5, 10_010)
    # sized to ml-1m's 985,000 positives: 2**20 samples (the bound) of 1,001 each -> 1,047 positives, ~941 steps
    sized = batch_for(Args(model="mf", negative_samples=8, shared_negatives=1000), 985_000, 1, 1024)
    assert (sized.per_rank, sized.total) == (1047, 1047 * 1001) and "about 941 steps per epoch" in sized.notes[0]


# ---- flags ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--loss", "bce", "--temperature", "0.5"], "--temperature divides the scores of --loss softmax"),
    (["--loss", "softmax", "--temperature", "0"], "--temperature must be positive"),
    (["--loss", "simplex", "--margin", "1"], r"--margin is a cosine similarity: in \[-1, 1\)"),
    (["--shared_negatives", "-1"], "--shared_negatives must not be negative"),
    (["--negative_sampler", "popularity", "--popularity_exponent", "0"], "--popularity_exponent must be positive"),
    (["--loss", "simplex", "--pretrain", "--checkpoint_dir", "x"], "--pretrain blends a GMF into NeuMF's dot-product"),
])
def test_flags_that_cannot_work_are_one_line(prepared, flags, message):
    with pytest.raises(UserError, match=message):
        one_loop.run(["--data", prepared, "--no_eval", "-e", "1", *flags])


def test_another_pairs_family_takes_the_same_flags():
    class Other(PairsTask):  # declares no flag of its own: PairsTask.add_arguments shares the loss's
        variants = ("otherpairs",)
        layout_default = False
        defaults = {"epochs": 1, "learning_rate": 0.1, "layers": [2], "dropout": 0.0, "topk": 10, "l2": 0.0,
                    "valid_batch_size": 2**16, "eval": "sampled", "negative_samples": 4, "loss": "softmax"}

    with registered(Other):
        help_text = parser().format_help()
        from training.args import for_family, parse_args

        _, settings = for_family(parse_args(["--data", "d", "--model", "otherpairs", "--loss", "bpr", "--no_eval"]),
                                 "otherpairs")
        assert settings.loss == "bpr" and "--shared_negatives N" in help_text.split("otherpairs only (pairs layout):")[1]
        _, settings = for_family(parse_args(["--data", "d", "--model", "otherpairs", "--no_eval"]), "otherpairs")
        assert settings.loss == "softmax"  # its own default
        _, settings = for_family(parse_args(["--data", "d", "--loss", "softmax", "--no_eval"]), "mf")
        assert settings.loss == "softmax"


# ---- short runs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, flags", [
    ("mf", ["--loss", "softmax", "--shared_negatives", "64", "--negative_sampler", "popularity", "-b", "8320"]),
    ("mf", ["--loss", "simplex", "--shared_negatives", "64", "-b", "8320"]),
    ("neumf", ["--loss", "bpr", "-b", "4608"]),
])
def test_a_short_run_of_each_loss_writes_a_checkpoint_that_recommend_reads(prepared, tmp_path, model, flags):
    run = tmp_path / "run"
    summary = one_loop.run(["--data", prepared, "--model", model, *flags, "-e", "1", "--steps_per_epoch", "10",
                            "-f", "8", "--layers", "16", "8", "--checkpoint_dir", run])
    assert summary["model"] == model and math.isfinite(summary["final_loss"]) and summary["best_hr"] > 0
    saved = torch.load(run / "model.pth", weights_only=True)["meta"]
    cosine = "simplex" in flags
    assert saved["architecture"].get("similarity", "dot") == ("cosine" if cosine else "dot")
    assert saved["args"]["loss"] == flags[1]
    out = tmp_path / "recs.csv"
    assert recommend.main(["--checkpoint", str(run / "model.pth"), "--data", str(prepared), "--users", "1,2,3",
                           "--topk", "5", "--output", str(out)]) == 0
    rows = pd.read_csv(out)
    assert rows.groupby("user").size().tolist() == [5, 5, 5] and set(rows["source"]) == {"model"}
    if cosine:  # recommend scores with the model's cosine too
        assert rows["score"].between(-1, 1).all()


def test_the_stream_draws_one_set_of_shared_negatives_per_step_seeded(prepared):
    from contract.feature_spec import FeatureSpec
    from training.data.pairs import TrainStream

    spec = FeatureSpec.from_yaml(prepared)
    counts = torch.bincount(torch.from_numpy(spec.read("train")["item_id"].to_numpy()), minlength=spec.item_cardinality)

    def steps(seed):
        stream = TrainStream(spec, 256, 4, Runtime(), seed, PopularitySampler(counts, 0.75), shared=100)
        try:
            return list(stream.epoch(0, max_steps=2))
        finally:
            stream.close()

    first = steps(0)
    assert all(isinstance(b, SharedBatch) and b.users.shape == b.items.shape == (256,) and b.negatives.shape == (100,)
               for b in first)
    assert (counts[first[0].negatives] > 0).all(), "an item without train positives was drawn"
    assert not torch.equal(first[0].negatives, first[1].negatives), "every step shares the same negatives"
    assert all(torch.equal(a.negatives, b.negatives) for a, b in zip(first, steps(0))), "not reproducible"
    assert not torch.equal(steps(1)[0].negatives, first[0].negatives), "the seed changes nothing"

"""Adding a family is one model module and one task: a toy family registered here (a dot product with an item
bias, on the pairs layout) trains, is tested (`--mode test`), recommends and is compared through the same
commands as the shipped families, and nothing outside its task knows it."""
import json

import pandas as pd
import pytest
import torch
from torch import nn

from contract.errors import UserError
from training import compare, recommend
from training import train as one_loop
from training.args import parser
from training.tasks import registered, task_for
from training.tasks.pairs import PairsTask


class DotWithBias(nn.Module):
    """The toy family's model module: user row . item row + item bias."""

    def __init__(self, n_users: int, n_items: int, factors: int):
        super().__init__()
        self.user, self.item = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        self.bias = nn.Parameter(torch.zeros(n_items))
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=0.01)

    def forward(self, users, items):
        """Logits of (users[p], items[..., p]); items (P,) or (T, P)."""
        return (self.user(users) * self.item(items)).sum(-1) + self.bias[items]

    def scores(self, users):
        return self.user(users) @ self.item.weight.T + self.bias


class DotWithBiasTask(PairsTask):
    """The toy family's task: its name, flags and defaults, architecture, model, loss and all-items scoring."""

    variants = ("toydot",)
    layout_default = False  # the pairs layout still trains NeuMF when no --model is given
    compared = ("toydot",)
    defaults = {"epochs": 2, "learning_rate": 0.05, "layers": [2], "dropout": 0.0, "topk": 10,
                "valid_batch_size": 2**16, "l2": 0.0, "eval": "sampled", "negative_samples": 4, "toy_factors": 8}

    @classmethod
    def add_arguments(cls, group):
        group.add_argument("--toy_factors", type=int, help="factors of the toy dot product (default: 8)")

    @classmethod
    def check_args(cls, args, error):
        if args.toy_factors < 1:
            error("--toy_factors must be at least 1")

    def architecture(self):
        return {"variant": "toydot", "factors": self.args.toy_factors}

    @classmethod
    def build(cls, arch, sizes, dropout):
        return DotWithBias(sizes["users"], sizes["items"], arch["factors"])

    def loss(self, net, model, batch, step):
        users, items, labels = batch
        return nn.functional.binary_cross_entropy_with_logits(net(users, items).float(), labels), {}

    @staticmethod
    def score_users(model, users, fold_in):
        return model.scores(users)


@pytest.fixture
def toy():
    with registered(DotWithBiasTask) as task:
        yield task


def test_a_registered_family_trains_tests_recommends_and_is_compared(toy, prepared, tmp_path):
    assert "toydot only (pairs layout)" in parser().format_help() and "--toy_factors" in parser().format_help()
    run = tmp_path / "run"
    summary = one_loop.run(["--data", prepared, "--model", "toydot", "--toy_factors", "4", "--checkpoint_dir", run])
    assert summary["model"] == "toydot" and summary["epochs"] == 2 and summary["best_epoch"] in (0, 1)
    saved = torch.load(run / "model.pth", weights_only=True)
    assert saved["meta"]["architecture"] == {"variant": "toydot", "factors": 4}
    assert saved["meta"]["args"]["toy_factors"] == 4

    tested = one_loop.run(["--mode", "test", "--data", prepared, "--load_checkpoint_path", run / "model.pth"])
    assert tested["model"] == "toydot" and tested["best_hr"] == summary["best_hr"]

    out = tmp_path / "recommendations.csv"
    assert recommend.main(list(map(str, ["--checkpoint", run / "model.pth", "--data", prepared, "--users", "1,2,3",
                                         "--topk", "5", "--output", out]))) == 0
    rows = pd.read_csv(out)
    assert set(rows["source"]) == {"model"} and rows.groupby("user").size().tolist() == [5, 5, 5]

    compared = tmp_path / "compare"
    assert compare.main(["--data", prepared, "--models", "toydot", "toppop", "-e", "1", "--max_users", "30",
                         "-k", "10", "--output", compared]) == 0, "compare of the toy family failed"
    results = json.loads((compared / "results.json").read_text())["models"]
    assert set(results) == {"toydot", "toppop"} and results["toydot"]["epochs"] == 1


def test_a_family_not_registered_is_unknown_and_its_flags_are_refused(prepared):
    with pytest.raises(UserError, match="unknown model 'toydot'"):
        task_for("toydot")
    with registered(DotWithBiasTask):
        with pytest.raises(UserError, match="--toy_factors is a flag of toydot; this run is neumf"):
            one_loop.run(["--data", prepared, "--toy_factors", "4", "--no_eval"])
    assert "--toy_factors" not in parser().format_help()

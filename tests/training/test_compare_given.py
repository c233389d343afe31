"""python -m training.compare on a user's own split (metadata.protocol.split given): every model on one protocol
(each user's test items ranked against the whole catalogue minus the user's train and validation items, Recall@K
over all of them), validation figures beside test figures at every K, and the pick the best on validation."""
import csv
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from contract.feature_spec import FeatureSpec
from training import checkpoint
from training.compare import pick
from training.data.carve import carve_pairs
from training.sparse import multi_hot
from training.tasks import build_model

from ..helpers import run_module, write_given_split

MODELS = ("neumf", "mf", "multvae", "ease", "toppop")
KS = (10, 5)  # as typed: the first, 10, is the one the pick is made on
METRICS = ("hr", "ndcg", "recall", "coverage")
SEED = 3
USERS, ITEMS = 60, 40


@pytest.fixture(scope="module")
def given(tmp_path_factory):
    return write_given_split(tmp_path_factory.mktemp("given") / "data", users=USERS, items=ITEMS)


@pytest.fixture(scope="module")
def compared(given, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-given") / "out"
    result = run_module("training.compare", "--data", given, "--output", out, "-e", "2", "-k", *KS, "--seed", SEED,
                        "--ease_lambdas", "20", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, json.loads((out / "results.json").read_text())


def test_every_model_has_validation_figures_beside_its_test_figures_at_every_k(compared):
    out, result, about = compared
    assert about["split"] == "given" and about["validation"].startswith("validation carved from train: a seeded 10%")
    assert "Recall@K over all of them" in result.stderr and about["users"]["test"] == USERS
    for name in MODELS:
        entry = about["models"][name]
        for metric in METRICS:
            for k in KS:
                assert 0 <= entry[f"{metric}@{k}"] <= 1 and 0 <= entry[f"validation_{metric}@{k}"] <= 1, (name, metric)
        assert entry["users"] == USERS and entry["validation_users"] == USERS
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["model"], r["split"], int(r["k"])) for r in rows} == {
        (m, split, k) for m in MODELS for split in ("validation", "test") for k in KS}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == set(MODELS)  # still one entry per model: consumers iterate models
    assert all(summary[m]["validation_recall@10"] == about["models"][m]["validation_recall@10"] for m in MODELS)


def test_every_family_chose_its_epoch_on_validation_recall_at_the_first_k(compared):
    _, result, about = compared
    chosen_on = re.findall(r"the best epoch is the one with the best (.*)$", result.stderr, re.M)
    assert chosen_on == ["validation Recall@10"] * 3, chosen_on  # neumf, mf, multvae
    # Mult-VAE trains on the train list of every user (all 60 of them are evaluated users too)
    assert f"-b 32 users chosen for {USERS} training users" in result.stderr
    assert about["models"]["ease"]["lambda_chosen_on"] == "validation recall@10"
    lambdas = about["models"]["ease"]["lambdas"]
    assert lambdas[f"{about['models']['ease']['lambda']:g}"] == max(lambdas.values()) \
        == about["models"]["ease"]["validation_recall@10"]


def test_the_pick_is_the_best_model_on_validation_and_is_shown(compared):
    out, result, about = compared
    models = about["models"]
    figures = [models[m]["validation_recall@10"] for m in MODELS]
    best = MODELS[figures.index(max(figures))]  # the first in --models order among equals
    assert about["pick"]["model"] == best and about["pick"]["on"] == "validation recall@10"
    assert [m for m in MODELS if models[m]["picked"]] == [best]
    assert about["pick"]["validation"] == models[best]["validation_recall@10"]
    assert about["pick"]["test"] == models[best]["recall@10"]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"\d\d:\d\d:\d\d pick: {best} \(validation Recall@10 {models[best]['validation_recall@10']:.4f}; "
                        rf"test {models[best]['recall@10']:.4f}\)", last), last
    marked = [line for line in result.stdout.splitlines() if "<- pick" in line]
    assert len(marked) == 1 and marked[0].split()[:2] == [best, "10"]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m for m in MODELS if summary[m]["picked"]] == [best]
    with open(out / "results.csv") as f:
        assert {r["model"] for r in csv.DictReader(f) if r["picked"] == "True"} == {best}


def test_the_pick_never_looks_at_test():
    results = {"a": {"validation_recall@20": 0.30, "recall@20": 0.90},
               "b": {"validation_recall@20": 0.50, "recall@20": 0.10},
               "c": {"validation_recall@20": 0.50, "recall@20": 0.20}}
    chosen = pick(results, "recall@20")
    assert chosen["model"] == "b" and chosen["validation"] == 0.5 and chosen["test"] == 0.1
    assert [name for name, r in results.items() if r["picked"]] == ["b"]


def _pairs(frame: pd.DataFrame) -> dict:
    return {u: set(g.tolist()) for u, g in frame.groupby("user_id")["item_id"]}


def _independent(score_row, targets: dict, have: dict, n_items: int, k: int) -> dict:
    """Recall@K over all of a user's targets, NDCG@K, HR@K by numpy; ties count against the model."""
    sums = {"hr": 0.0, "ndcg": 0.0, "recall": 0.0}
    for user, wanted in targets.items():
        row = np.asarray(score_row(user), dtype=np.float64).copy()
        row[list(have.get(user, ()))] = -np.inf
        order = sorted(range(n_items), key=lambda i: (-row[i], i in wanted))[:k]
        hits = [i in wanted for i in order]
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(wanted))))
        sums["hr"] += any(hits)
        sums["recall"] += sum(hits) / len(wanted)
        sums["ndcg"] += sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h) / ideal
    return {f"{m}@{k}": v / len(targets) for m, v in sums.items()}


def test_validation_and_test_figures_are_an_independent_evaluators(compared, given):
    """The carve is seeded: the same --seed gives the same validation items, so the figures can be recomputed.
    At test, a user's train and validation items are excluded; at validation, the train items; every model
    is given the user's (carved) train items."""
    out, _, about = compared
    spec = FeatureSpec.from_yaml(given / "feature_spec.yaml")
    carved = carve_pairs(spec, SEED)
    try:
        train, valid = _pairs(carved.spec.read("train")), _pairs(carved.spec.read("validation"))
    finally:
        carved.close()
    test = _pairs(spec.read("test"))
    everything = {u: train.get(u, set()) | valid.get(u, set()) for u in set(train) | set(valid)}
    x = np.zeros((USERS, ITEMS))
    for user, items in train.items():
        x[user, list(items)] = 1.0
    lam = about["models"]["ease"]["lambda"]
    p = np.linalg.inv(x.T @ x + lam * np.eye(ITEMS))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    payload = checkpoint.read(out / "multvae" / checkpoint.BEST)
    vae = build_model(payload["meta"]["architecture"], {"users": USERS, "items": ITEMS})
    vae.load_state_dict(payload["model"])
    vae.eval()

    def vae_row(user):
        history = sorted(train[user])
        with torch.no_grad():
            return vae(multi_hot(torch.tensor([0, len(history)]), torch.tensor(history), ITEMS))[0][0].numpy()

    rows = {"toppop": lambda user: x.sum(axis=0), "ease": lambda user: x[user] @ b, "multvae": vae_row}
    for name, row in rows.items():
        for k in KS:
            for split, targets, have, prefix in (("test", test, everything, ""),
                                                 ("validation", valid, train, "validation_")):
                for key, value in _independent(row, targets, have, ITEMS, k).items():
                    assert about["models"][name][prefix + key] == pytest.approx(value, abs=1e-9), (name, split, key)


def test_a_given_split_with_its_own_validation_is_not_carved(given, tmp_path):
    folder = tmp_path / "with-validation"
    folder.mkdir()
    train = pd.read_parquet(given / "train")
    held = train.groupby("user_id").head(1).index[: USERS // 2]  # one item of half the users
    for name, frame in (("train", train.drop(index=held)), ("validation", train.loc[held])):
        (folder / name).mkdir()
        frame.to_parquet(folder / name / "part_00000.parquet", index=False)
    (folder / "test").mkdir()
    pd.read_parquet(given / "test").to_parquet(folder / "test" / "part_00000.parquet", index=False)
    spec = yaml.safe_load((given / "feature_spec.yaml").read_text())
    spec["source_spec"]["validation"] = [{**spec["source_spec"]["train"][0], "files": ["validation/part_00000.parquet"]}]
    (folder / "feature_spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    result = run_module("training.compare", "--data", folder, "--output", out, "--models", "ease", "toppop", "-k", "5",
                        "--ease_lambdas", "20", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    about = json.loads((out / "results.json").read_text())
    assert "no validation mapping" not in result.stderr and "validation" not in about
    assert about["users"]["validation"] == USERS // 2 and about["models"]["toppop"]["validation_users"] == USERS // 2
    assert about["pick"]["model"] in ("ease", "toppop") and result.stderr.strip().splitlines()[-1].split()[1] == "pick:"


def test_a_relative_data_folder_without_validation(given, tmp_path):
    """The carved copy lives elsewhere: the given folder's other files must not be read relative to it."""
    result = run_module("training.compare", "--data", given.name, "--output", tmp_path / "out", "--models", "toppop",
                        "-k", "5", cwd=given.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["pick"]["model"] == "toppop"

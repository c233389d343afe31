"""python -m training.compare: the figures of every model agree with a brute-force numpy ranking of the
evaluated users, the outputs are complete, and bad input is refused in one line before any training."""
import csv
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from contract.atomic import current_umask
from training import checkpoint
from training.compare import main
from training.sparse import multi_hot
from training.tasks import build_model

from ..helpers import run_module

KS = (1, 5, 20)
USERS = 12


@pytest.fixture(scope="module")
def compared(prepared, trained, tmp_path_factory):
    """All five models on `prepared`, 12 sampled users; NeuMF from the session's checkpoint, MF and Mult-VAE trained."""
    out = tmp_path_factory.mktemp("compare") / "out"
    result = run_module("training.compare", "--data", prepared, "--output", out, "-e", "1", "--max_users", USERS,
                        "-k", *KS, "--checkpoint", f"neumf={trained}", "--ease_lambdas", "20", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def _positives(folder: Path, mapping: str) -> pd.DataFrame:
    frame = pd.read_parquet(folder / mapping)
    return frame[frame["label"] == 1] if mapping != "train" else frame


def brute_force(score_row, users, data: Path, n_items: int, k: int) -> dict:
    """Per user: rank every real item the user does not have; a tie counts against the target."""
    train, valid, test = (_positives(data, m) for m in ("train", "validation", "test"))
    first = yaml.safe_load((data / "feature_spec.yaml").read_text())["metadata"]["encoding"]["first_index"]
    sums, shown = {"hr": 0.0, "ndcg": 0.0, "recall": 0.0}, set()
    for user in users:
        have = set(train.item_id[train.user_id == user]) | set(valid.item_id[valid.user_id == user])
        target = int(test.item_id[test.user_id == user].iloc[0])
        scores = score_row(user, sorted(train.item_id[train.user_id == user]))
        eligible = [i for i in range(first, n_items) if i not in have]
        position = sum(scores[i] >= scores[target] for i in eligible if i != target)
        sums["hr"] += position < k
        sums["recall"] += position < k
        sums["ndcg"] += 1 / math.log2(position + 2) if position < k else 0.0
        shown |= set(sorted(eligible, key=lambda i: (-scores[i], i == target, i))[:k])
    return {**{f"{m}@{k}": v / len(users) for m, v in sums.items()}, f"coverage@{k}": len(shown) / (n_items - first)}


def model_of(path: Path, n_users: int, n_items: int):
    payload = checkpoint.read(path)
    model = build_model(payload["meta"]["architecture"], {"users": n_users, "items": n_items})
    model.load_state_dict(payload["model"])
    return model.eval()


def test_every_model_agrees_with_a_brute_force_ranking(compared, prepared, trained):
    out, result = compared
    about = json.loads((out / "results.json").read_text())
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"neumf", "mf", "multvae", "ease", "toppop"} and about["users"]["sampled"]
    users = about["users"]["test_ids"]
    assert len(users) == USERS and f"a seeded sample of {USERS} of" in result.stderr
    spec = yaml.safe_load((prepared / "feature_spec.yaml").read_text())["feature_spec"]
    n_users, n_items = spec["user_id"]["cardinality"], spec["item_id"]["cardinality"]
    train = _positives(prepared, "train")
    x = np.zeros((n_users, n_items))
    x[train.user_id, train.item_id] = 1.0
    lam = about["models"]["ease"]["lambda"]
    assert lam in (20.0, 200.0)
    p = np.linalg.inv(x.T @ x + lam * np.eye(n_items))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    neumf, vae = model_of(trained, n_users, n_items), model_of(out / "multvae" / "model.pth", n_users, n_items)
    mf = model_of(out / "mf" / "model.pth", n_users, n_items)
    assert mf.variant == "mf"

    def vae_row(user, history):
        return vae(multi_hot(torch.tensor([0, len(history)]), torch.tensor(history), n_items))[0][0].numpy()

    rows = {"toppop": lambda user, history: x.sum(axis=0),
            "ease": lambda user, history: x[user] @ b,
            "neumf": lambda user, history: neumf(torch.full((n_items,), user), torch.arange(n_items)).numpy(),
            "mf": lambda user, history: mf(torch.full((n_items,), user), torch.arange(n_items)).numpy(),
            "multvae": vae_row}
    for name, score_row in rows.items():
        for k in KS:
            with torch.no_grad():
                expected = brute_force(score_row, users, prepared, n_items, k)
            for key, value in expected.items():
                assert summary[name][key] == pytest.approx(value, abs=1e-9), (name, key)
    assert summary["ease"]["hr@20"] > summary["toppop"]["hr@20"]  # the data has structure a baseline finds


def test_outputs_table_plot_and_timings(compared):
    out, result = compared
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["model", "K", "HR", "NDCG", "Recall", "coverage", "seconds", "val.NDCG"]
    assert len(lines) == 1 + 5 * len(KS) + 1
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["split"], int(r["k"])) for r in rows] == [
        (m, split, k) for m in ("neumf", "mf", "multvae", "ease", "toppop") for split in ("validation", "test") for k in KS]
    # leave-one-out data: the pick is the best validation NDCG at the first -k, as EASE's lambda is
    about = json.loads((out / "results.json").read_text())
    best = max(about["models"], key=lambda m: about["models"][m][f"validation_ndcg@{KS[0]}"])
    assert about["pick"]["model"] == best and about["pick"]["on"] == f"validation ndcg@{KS[0]}"
    assert [r["model"] for r in rows if r["picked"] == "True"] == [best] * 2 * len(KS)
    assert result.stderr.strip().splitlines()[-1].endswith(f"pick: {best} (validation NDCG@{KS[0]} "
                                                          f"{about['pick']['validation']:.4f}; test "
                                                          f"{about['models'][best][f'ndcg@{KS[0]}']:.4f})")
    # (evaluating a dozen users can round to 0.000 s; training a family cannot)
    assert all(float(r["seconds"]) >= float(r["eval_seconds"]) >= 0 for r in rows)
    assert all(float(r["train_seconds"]) > 0 for r in rows if r["model"] in ("mf", "multvae"))  # neumf: a checkpoint
    assert (out / "compare.png").stat().st_size > 10_000 and (out / "multvae" / "log.jsonl").is_file()
    assert "multvae: training" in result.stderr and "EASE lambda 200: validation" in result.stderr
    assert all(line[:2].isdigit() and line[2] == ":" for line in result.stderr.splitlines() if "ease" in line.lower())
    assert not list(out.parent.glob(".out.tmp-*")) and not (out / ".multvae-data").exists()
    assert (out.stat().st_mode & 0o777) == 0o777 & ~current_umask()


def _refused(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_refusals_in_one_line(prepared, prepared_lists, trained_vae, tmp_path, capsys):
    assert "needs the pairs layout" in _refused(["--data", prepared_lists, "--models", "toppop"], capsys)
    (tmp_path / "exists").mkdir()
    assert "already exists (pass --overwrite" in _refused(
        ["--data", prepared, "--output", tmp_path / "exists", "--models", "toppop"], capsys)
    assert "is a multvae checkpoint, not neumf" in _refused(
        ["--data", prepared, "--output", tmp_path / "o", "--checkpoint", f"neumf={trained_vae}"], capsys)
    assert "does not exist" in _refused(
        ["--data", prepared, "--output", tmp_path / "o", "--checkpoint", f"neumf={tmp_path / 'none.pth'}"], capsys)
    assert not (tmp_path / "o").exists()


def test_data_without_validation_gets_it_carved_from_train_never_test(prepared, tmp_path):
    """BYO data (train and test only): a validation set is carved from train as the one loop carves it, EASE
    picks lambda on it, NeuMF trains on what is left; test stays whole, and the carved copy is removed."""
    copy = tmp_path / "no-validation"
    shutil.copytree(prepared, copy)
    spec = yaml.safe_load((copy / "feature_spec.yaml").read_text())
    del spec["source_spec"]["validation"]
    (copy / "feature_spec.yaml").write_text(yaml.safe_dump(spec))
    out, before = tmp_path / "out", set(Path(tempfile.gettempdir()).iterdir())
    result = run_module("training.compare", "--data", copy, "--output", out, "--models", "neumf", "ease", "toppop",
                        "-e", "1", "-k", "10", "--ease_lambdas", "20", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no validation mapping: validation carved from train: a seeded random positive per user" in result.stderr
    about = json.loads((out / "results.json").read_text())
    test_users = pd.read_parquet(copy / "test").query("label == 1").user_id.nunique()
    assert about["validation"].startswith("validation carved from train")
    assert about["users"]["test"] == test_users and 0 < about["users"]["validation"] <= test_users
    assert set(about["models"]["ease"]["lambdas"]) == {"20", "200"} and about["split"] == "leave-one-out"
    chosen = about["models"]["ease"]["lambdas"][f"{about['models']['ease']['lambda']:g}"]
    assert chosen == about["models"]["ease"]["validation_ndcg@10"] == max(about["models"]["ease"]["lambdas"].values())
    # NeuMF trained on the carved copy (no second carve of its own) and chose its epoch on that validation
    assert result.stderr.count("validation carved from train") == 1
    assert about["models"]["neumf"]["best_epoch"] is not None
    assert not [p for p in Path(tempfile.gettempdir()).iterdir() if "carved-validation" in p.name and p not in before]


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "ease=x.pth"], "expected NAME=PATH with NAME one of neumf, mf, multvae"),
    (["--models", "toppop", "--checkpoint", "neumf=x.pth"], "neumf is not among --models"),
    (["-k", "0"], "-k values must be at least 1"),
    (["--max_users", "0"], "--max_users must be at least 1"),
    (["--ease_lambdas", "-1"], "--ease_lambdas must be positive"),
])
def test_bad_flags_are_refused(prepared, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(prepared), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_ease_on_an_item_subset_says_so(prepared, tmp_path):
    result = run_module("training.compare", "--data", prepared, "--output", tmp_path / "out", "--models", "ease",
                        "--ease_max_items", "50", "--ease_lambdas", "100", "-k", "10")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "models the 50 most popular" in result.stderr
    about = json.loads((tmp_path / "out" / "results.json").read_text())
    assert about["models"]["ease"]["items"] == 50 and about["models"]["ease"]["coverage@10"] <= 50 / 300

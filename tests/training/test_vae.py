"""python -m training.vae on real lists data: accuracy against popularity, the JSON summary and log, the KL
annealing in the loss, --mode test, resume, re-run rules, bad input, recommendations for raw user ids."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training.vae import main, run

from ..etl.test_lists import lists_of
from ..helpers import run_module, vocabulary

SMALL = ["--batch_size_train", "64", "--layers", "64", "16", "--lr", "0.003"]


@pytest.fixture(scope="module")
def vae_run(prepared_lists, tmp_path_factory):
    """6 epochs through the command line, as a user would run it."""
    root = tmp_path_factory.mktemp("vae")
    result = run_module("training.vae", "--data", prepared_lists, "-e", "6", *SMALL, "--total_anneal_steps", "200",
                        "--checkpoint_dir", root / "ckpt", "--log_path", root / "log.jsonl", "--tensorboard", root / "tb")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_learns_far_above_popularity_and_reports(vae_run):
    root, summary, stderr = vae_run
    for key in ("best_ndcg", "best_recall@20", "best_recall@50", "toppop_ndcg", "train_throughput", "best_epoch",
                "best_valid_ndcg", "time_to_best", "eval_throughput"):
        assert summary[key] is not None, key
    assert summary["best_ndcg"] > summary["toppop_ndcg"] + 0.15, summary
    assert summary["best_recall@50"] > summary["toppop_recall@50"] and summary["k"] == 100
    assert summary["selected_on"] == "validation" and summary["epochs"] == 6 and summary["model"] == "multvae"
    records = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(6))
    assert summary["best_valid_ndcg"] == max(r["valid_ndcg"] for r in records)
    assert records[summary["best_epoch"]]["valid_ndcg"] == summary["best_valid_ndcg"]
    assert (root / "log.png").stat().st_size > 0 and (root / "ckpt" / "model.pth").is_file()
    assert list((root / "tb").glob("events.out.tfevents.*"))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    assert sum(bool(re.match(r"\S+ epoch +\d", line)) for line in lines) == 6


def test_the_kl_term_is_annealed(vae_run):
    """The loss carries beta * KL with beta growing by 1/total_anneal_steps per step, not the cap at once."""
    records = [json.loads(line) for line in (vae_run[0] / "log.jsonl").read_text().splitlines()]
    steps = np.cumsum([r["steps"] for r in records])
    assert [r["beta"] for r in records] == pytest.approx(np.minimum(0.2, steps / 200).tolist())
    for record, end in zip(records, steps):
        used = (record["loss"] - record["nll"]) / record["kl"]  # the mean beta of the epoch's steps
        assert max(0.0, (end - record["steps"]) / 200) - 1e-4 <= used <= min(0.2, end / 200) + 1e-4, record


def test_mode_test_reproduces_the_chosen_models_figures(vae_run, prepared_lists, capsys):
    root, summary, _ = vae_run
    assert main(["--mode", "test", "--data", str(prepared_lists), "--load_checkpoint_path",
                 str(root / "ckpt" / "model.pth")]) == 0
    tested = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("best_ndcg", "best_recall@20", "best_recall@50", "toppop_ndcg", "best_epoch"):
        assert tested[key] == pytest.approx(summary[key]), key


def test_resume_equals_uninterrupted(prepared_lists, tmp_path):
    common = ["--data", str(prepared_lists), *SMALL, "--total_anneal_steps", "20"]
    straight = run([*common, "-e", "3", "--checkpoint_dir", str(tmp_path / "a")])
    run([*common, "-e", "1", "--checkpoint_dir", str(tmp_path / "b")])
    resumed = run([*common, "-e", "3", "--checkpoint_dir", str(tmp_path / "b"), "--resume"])
    a = torch.load(tmp_path / "a" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pth", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["meta"]["step"] == b["meta"]["step"]
    for key in ("best_ndcg", "best_epoch", "best_valid_ndcg", "epochs"):
        assert resumed[key] == straight[key], key


def _fails(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


def test_refuses_to_replace_an_earlier_run_and_bad_input(vae_run, prepared_lists, prepared, capsys):
    root = vae_run[0]
    message = _fails(capsys, ["--data", str(prepared_lists), "-e", "1", "--checkpoint_dir", str(root / "ckpt")])
    assert "is from an earlier run: pass --resume" in message
    assert "--model multvae needs the lists layout" in _fails(capsys, ["--data", str(prepared), "-e", "1"])
    assert "does not exist" in _fails(capsys, ["--mode", "test", "--data", str(prepared_lists),
                                               "--load_checkpoint_path", str(root / "nope.pth")])


def test_recommends_for_raw_user_ids_excluding_what_they_have(vae_run, prepared_lists, tmp_path, capsys):
    spec = FeatureSpec.from_yaml(prepared_lists)
    users, items = vocabulary(spec.workflow_dir, "user_id"), vocabulary(spec.workflow_dir, "item_id")
    held_out = next(iter(lists_of(spec, "test")))
    trainee = next(iter(lists_of(spec, "train")))
    raw_users = [str(users[held_out]), str(users[trainee]), "999999"]
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--checkpoint", str(vae_run[0] / "ckpt" / "model.pth"), "--data", str(prepared_lists),
                 "--users", ",".join(raw_users), "--topk", "20", "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["popularity_fallback_users"] == 1
    recs = pd.read_csv(out)
    assert (recs.groupby("user").size() == 20).all() and set(recs["user"].astype(str)) == set(raw_users)
    assert (recs.loc[recs["user"] == 999999, "source"] == "popularity").all()
    had = {held_out: set(sum(lists_of(spec, "test")[held_out], ())), trainee: set(lists_of(spec, "train")[trainee][0])}
    known = lists_of(spec, "known")
    for user in (held_out, trainee):
        had[user] |= set(known.get(user, ((),))[0])
        mine = recs[recs["user"] == users[user]]
        assert (mine["source"] == "model").all() and mine["rank"].tolist() == list(range(1, 21))
        assert not set(mine["item"]) & {items[i] for i in had[user]}, "recommended an item the user has"


def test_amp_path_runs(prepared_lists):
    """bf16 autocast on CPU (fp16 + GradScaler on CUDA): the loss stays finite and the model still ranks."""
    summary = run(["--data", str(prepared_lists), "-e", "1", "--amp", "--steps_per_epoch", "3", *SMALL])
    assert np.isfinite(summary["final_loss"]) and 0 < summary["best_ndcg"] <= 1


def test_a_checkpoint_written_before_the_shared_loop_resumes(prepared_lists, tmp_path):
    """Mult-VAE's last.pth of the old loop kept `chosen_on` and `valid_ndcg@100` in its report: resuming keeps its best."""
    common = ["--data", str(prepared_lists), *SMALL, "--total_anneal_steps", "20", "--checkpoint_dir", str(tmp_path)]
    first = run([*common, "-e", "2"])
    last = tmp_path / "last.pth"
    payload = torch.load(last, weights_only=True)
    best = payload["meta"]["report"]["best"]
    payload["meta"]["report"]["best"] = {"best_epoch": best["best_epoch"], "time_to_best": best["time_to_best"],
                                         "valid_ndcg@100": best["best_valid_ndcg"], "chosen_on": "validation"}
    torch.save(payload, last)
    resumed = run([*common, "-e", "3", "--resume"])
    assert resumed["selected_on"] == "validation" and resumed["epochs"] == 3
    history = [r["valid_ndcg"] for r in torch.load(last, weights_only=True)["meta"]["report"]["history"]]
    assert resumed["best_epoch"] == max(range(3), key=lambda e: (history[e], -e))
    assert resumed["best_valid_ndcg"] == max(history) and first["best_valid_ndcg"] == max(history[:2])

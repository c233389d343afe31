"""Training on real data through the real loader: accuracy, resume, AMP, test mode, bad input."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from training.models.neumf import NeuMF
from training.objective import Objective
from training.runtime import Runtime
from training.train import accumulate_gradients

from ..helpers import run_module, train, train_fails, write_byo_dataset

SMALL = ["-b", "4096", "-f", "8", "--layers", "16", "8", "-l", "0.01"]


def test_learns_the_byo_dataset_far_above_toppop(tmp_path):
    """BYO csv chunks with other feature names and 6-row series; tastes popularity cannot see."""
    folder = write_byo_dataset(tmp_path / "byo")
    log = tmp_path / "run" / "log.jsonl"
    summary = train("--data", folder, "-e", "8", "-b", "300", "-f", "8", "--layers", "16", "8", "-l", "0.02",
                    "-k", "2", "--threshold", "0.99", "--checkpoint_dir", tmp_path / "ckpt", "--log_path", log,
                    "--tensorboard", tmp_path / "tb")
    assert summary["best_hr"] > summary["toppop_hr"] + 0.3, summary
    assert summary["selected_on"] == "test"  # DLE BYO data has no validation mapping: test is the fallback
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(len(records)))
    assert len(records) == 8 or records[-1]["hr"] >= 0.99  # --threshold stops early
    assert {"loss", "hr", "ndcg", "train_throughput", "eval_throughput", "train_seconds"} <= set(records[0])
    assert (tmp_path / "run" / "log.png").stat().st_size > 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    for key in ("best_hr", "best_ndcg", "best_epoch", "train_throughput", "eval_throughput", "time_to_best"):
        assert summary[key] is not None
    # --mode test on the best checkpoint reproduces the best HR
    tested = train("--mode", "test", "--data", folder, "-k", "2", "--load_checkpoint_path", tmp_path / "ckpt" / "model.pth")
    assert tested["hr"] == pytest.approx(summary["best_hr"])


def test_synthetic_end_to_end_beats_toppop_and_picks_the_epoch_on_validation(prepared, tmp_path):
    log = tmp_path / "log.jsonl"
    summary = train("--data", prepared, "-e", "8", "-b", "2048", "-f", "16", "--layers", "64", "32", "-l", "0.005",
                    "--log_path", log)
    assert summary["best_hr"] > summary["toppop_hr"] + 0.08, summary
    records = [json.loads(line) for line in log.read_text().splitlines()]
    chosen = max(records, key=lambda r: r["valid_hr"])  # the first of equals, as training keeps it
    assert summary["selected_on"] == "validation" and summary["best_epoch"] == chosen["epoch"]
    # the reported figures are the test ones of the epoch chosen on validation, not the best test epoch
    assert summary["best_hr"] == chosen["hr"] and summary["best_valid_hr"] == chosen["valid_hr"]


def test_resume_equals_uninterrupted(prepared, tmp_path):
    common = ["--data", prepared, *SMALL, "--dropout", "0.2", "--layers", "16", "8"]
    straight = train(*common, "-e", "3", "--checkpoint_dir", tmp_path / "a")
    train(*common, "-e", "1", "--checkpoint_dir", tmp_path / "b")
    resumed = train(*common, "-e", "3", "--checkpoint_dir", tmp_path / "b", "--resume")
    a = torch.load(tmp_path / "a" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pth", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert resumed["best_hr"] == straight["best_hr"] and resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["epochs"] == 3


def test_amp_path_runs_and_progress_lines_carry_timestamps(prepared):
    result = run_module("training", "--data", prepared, "-e", "1", *SMALL, "--amp")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 <= summary["best_hr"] <= 1 and np.isfinite(summary["final_loss"])
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    assert any("epoch   0" in line for line in lines)
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines


def test_grad_accumulation_and_variants(prepared):
    for variant in ("gmf", "mlp"):
        summary = train("--data", prepared, "-e", "1", *SMALL, "--model", variant, "--grads_accumulated", "2")
        assert np.isfinite(summary["final_loss"])


@pytest.mark.parametrize("micro_batches", [2, 3])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_accumulated_gradients_equal_the_whole_batch(micro_batches, l2):
    """Slices of unequal size included: the gradient and loss are those of the whole batch's mean loss."""
    torch.manual_seed(0)
    model = NeuMF(30, 20, mf_dim=4, mlp_layer_sizes=(8, 4), dropout=0.0)
    # 10 positives (columns), each with its item and 4 negatives, as TrainStream yields them
    batch = (torch.randint(0, 30, (10,)), torch.randint(0, 20, (5, 10)), torch.randint(0, 2, (5, 10)).float())
    runtime, objective = Runtime(), Objective(model, model, l2)
    whole = accumulate_gradients(objective, batch, 1, runtime, runtime.grad_scaler())
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    accumulated = accumulate_gradients(objective, batch, micro_batches, runtime, runtime.grad_scaler())
    assert accumulated.item() == pytest.approx(whole.item(), rel=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)


BAD = {
    "rows not a multiple of the series": (
        lambda f: pd.read_csv(f / "test.csv").iloc[:-1].to_csv(f / "test.csv", index=False), "not a multiple"),
    "series without exactly one positive": (
        lambda f: pd.read_csv(f / "test.csv").assign(clicked=0.0).to_csv(f / "test.csv", index=False),
        "exactly one positive"),
    "ids beyond cardinality": (
        lambda f: pd.read_csv(f / "train_ids_1.csv").assign(product=99).to_csv(f / "train_ids_1.csv", index=False),
        "cardinality is 40"),
    "K not below the series length": (lambda f: None, "must be smaller than the test series length"),
    "missing channel": (
        lambda f: (f / "feature_spec.yaml").write_text(
            (f / "feature_spec.yaml").read_text().replace("label_ch: [clicked]", "")), "label_ch is missing"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_data_fails_with_one_line(tmp_path, case):
    folder = write_byo_dataset(tmp_path / "byo")
    edit, message = BAD[case]
    edit(folder)
    k = "6" if case.startswith("K ") else "2"
    assert message in train_fails("--data", folder, "-e", "1", *SMALL, "-k", k)


def test_a_rerun_never_replaces_an_earlier_run_without_a_flag(tmp_path):
    folder = write_byo_dataset(tmp_path / "byo")
    ckpt, log = tmp_path / "ckpt", tmp_path / "log.jsonl"
    common = ["--data", folder, *SMALL, "-b", "300", "-k", "2", "--checkpoint_dir", ckpt, "--log_path", log]
    train(*common, "-e", "2")
    best = (ckpt / "model.pth").read_bytes()
    assert "--resume" in train_fails(*common, "-e", "1") and "--overwrite" in train_fails(*common, "-e", "1")
    assert (ckpt / "model.pth").read_bytes() == best and len(log.read_text().splitlines()) == 2
    train(*common, "-e", "1", "--overwrite")
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [0]


def test_load_checkpoint_path_in_train_mode_starts_from_those_weights(tmp_path):
    """DLE semantics: the weights are loaded before training (a tiny learning rate keeps them)."""
    folder = write_byo_dataset(tmp_path / "byo")
    first = train("--data", folder, "-e", "6", "-b", "300", "-f", "8", "--layers", "16", "8", "-l", "0.02", "-k", "2",
                  "--checkpoint_dir", tmp_path / "a")
    again = train("--data", folder, "-e", "1", "-b", "300", "-l", "1e-9", "-k", "2",
                  "--load_checkpoint_path", tmp_path / "a" / "model.pth")
    assert first["best_hr"] > first["toppop_hr"] + 0.2
    assert again["best_hr"] == pytest.approx(first["best_hr"], abs=0.02)


@pytest.mark.parametrize("flag", ["--checkpoint_dir", "--log_path"])
def test_unwritable_output_is_one_line(tmp_path, flag):
    folder = write_byo_dataset(tmp_path / "byo")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert "cannot" in train_fails("--data", folder, "-e", "1", *SMALL, "-b", "300", "-k", "2", flag, blocker / "out")

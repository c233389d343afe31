"""Training on real data through the real loader: accuracy, resume, AMP, test mode, bad input."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from training import train as loop
from training.tasks.neumf import NeuMFTask

from ..helpers import finish, interrupt, paused, run_module, train, train_fails, write_byo_dataset

SMALL = ["-b", "4096", "-f", "8", "--layers", "16", "8", "-l", "0.01"]


def test_learns_the_byo_dataset_far_above_toppop(tmp_path):
    """BYO csv chunks with other feature names and 6-row series; tastes popularity cannot see."""
    folder = write_byo_dataset(tmp_path / "byo")
    log = tmp_path / "run" / "log.jsonl"
    summary = train("--data", folder, "-e", "8", "-b", "300", "-f", "8", "--layers", "16", "8", "-l", "0.02",
                    "-k", "2", "--threshold", "0.99", "--checkpoint_dir", tmp_path / "ckpt", "--log_path", log,
                    "--tensorboard", tmp_path / "tb")
    assert summary["best_hr"] > summary["toppop_hr"] + 0.3, summary
    # DLE BYO data has no validation mapping: one positive per user is carved from train, never test
    assert summary["selected_on"] == "validation" and "carved from train" in summary["validation"]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(len(records)))
    assert len(records) == 8 or records[-1]["valid_hr"] >= 0.99  # --threshold stops early
    assert {"loss", "valid_hr", "valid_ndcg", "train_throughput", "eval_throughput", "train_seconds"} <= set(records[0])
    assert all("hr" not in r for r in records)  # test is never looked at per epoch
    assert (tmp_path / "run" / "log.png").stat().st_size > 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    for key in ("best_hr", "best_ndcg", "best_epoch", "train_throughput", "eval_throughput", "time_to_best"):
        assert summary[key] is not None
    # --mode test on the best checkpoint reproduces the best HR
    # (its TopPop counts the whole train mapping; the run's counted the train it trained on, less the carved positives)
    tested = train("--mode", "test", "--data", folder, "-k", "2", "--load_checkpoint_path", tmp_path / "ckpt" / "model.pth")
    for key in ("best_hr", "best_ndcg", "best_epoch"):
        assert tested[key] == pytest.approx(summary[key]), key


def test_a_test_set_too_small_to_measure_is_said(tmp_path, prepared):
    small = run_module("training", "--data", write_byo_dataset(tmp_path / "byo"), "-e", "1", "-k", "2", "-b", "300",
                       "-f", "8", "--layers", "16", "8", "--checkpoint_dir", tmp_path / "a")
    assert small.returncode == 0, small.stderr[-2000:]
    assert json.loads(small.stdout.splitlines()[-1])["test_series"] == 60
    assert "only 60 series (under 100): too few to tell models apart" in small.stderr
    enough = run_module("training", "--data", prepared, "-e", "1", *SMALL, "--checkpoint_dir", tmp_path / "b")
    assert enough.returncode == 0 and "too few" not in enough.stderr


def test_synthetic_end_to_end_beats_toppop_and_picks_the_epoch_on_validation(prepared, tmp_path):
    log = tmp_path / "log.jsonl"
    summary = train("--data", prepared, "-e", "8", "-b", "2048", "-f", "16", "--layers", "64", "32", "-l", "0.005",
                    "--log_path", log, "--checkpoint_dir", tmp_path)
    assert summary["best_hr"] > summary["toppop_hr"] + 0.08, summary
    records = [json.loads(line) for line in log.read_text().splitlines()]
    chosen = max(records, key=lambda r: r["valid_hr"])  # the first of equals, as training keeps it
    assert summary["selected_on"] == "validation" and summary["best_epoch"] == chosen["epoch"]
    assert summary["best_valid_hr"] == chosen["valid_hr"] and all("hr" not in r for r in records)  # no test per epoch
    # the reported test figures are those of the epoch chosen on validation (its saved model)
    tested = train("--mode", "test", "--data", prepared, "--load_checkpoint_path", tmp_path / "model.pth")
    assert tested["best_hr"] == summary["best_hr"] and tested["best_epoch"] == chosen["epoch"]


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


def test_progress_lines_carry_timestamps_and_a_default_run_folder(prepared, tmp_path):
    result = run_module("training", "--data", prepared, "-e", "1", *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    assert any("epoch   0" in line for line in lines)
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    # no --checkpoint_dir or --log_path: a new folder under runs/, named on the first line
    folder = tmp_path / summary["checkpoint_dir"]
    assert folder.parent == tmp_path / "runs" / prepared.name and summary["checkpoint_dir"] in lines[0]
    assert {p.name for p in folder.iterdir()} == {"model.pth", "last.pth", "log.jsonl", "log.png"}


class Spy:
    """Wraps a NeuMFTask method and records what the loop did around each call."""

    def __init__(self, monkeypatch, name, record):
        self.calls = []
        original = getattr(NeuMFTask, name)

        def spied(task, *args, **kwargs):
            self.calls.append(record(task, *args, **kwargs))
            return original(task, *args, **kwargs)

        monkeypatch.setattr(NeuMFTask, name, spied)


def test_amp_runs_the_loss_and_the_full_ranking_under_autocast(prepared, monkeypatch):
    """bf16 autocast on CPU (fp16 + GradScaler on CUDA): the forward passes run in it, the loss stays finite."""
    loss = Spy(monkeypatch, "loss", lambda task, net, model, batch, step: torch.is_autocast_cpu_enabled())
    ranked, score_users = [], NeuMFTask.score_users
    monkeypatch.setattr(NeuMFTask, "score_users", staticmethod(
        lambda *args: ranked.append(torch.is_autocast_cpu_enabled()) or score_users(*args)))
    summary = loop.run(["--data", str(prepared), "-e", "1", *SMALL, "--steps_per_epoch", "3", "--eval", "both",
                        "--amp", "--log_path", str(prepared.parent / "amp-log.jsonl"), "--overwrite"])
    assert loss.calls and all(loss.calls)
    assert ranked and all(ranked)
    assert np.isfinite(summary["final_loss"]) and 0 <= summary["best_hr"] <= 1 and 0 <= summary["full_hr"] <= 1
    plain = Spy(monkeypatch, "loss", lambda task, net, model, batch, step: torch.is_autocast_cpu_enabled())
    loop.run(["--data", str(prepared), "-e", "1", *SMALL, "--steps_per_epoch", "2", "--no_eval"])
    assert plain.calls and not any(plain.calls)


def test_grads_accumulated_splits_every_step_and_variants_train(prepared, monkeypatch):
    split = Spy(monkeypatch, "micro_batches", lambda task, batch, n: n)
    for variant in ("gmf", "mlp"):
        summary = loop.run(["--data", str(prepared), "-e", "1", *SMALL, "--model", variant, "--grads_accumulated", "3",
                            "--steps_per_epoch", "2", "--no_eval"])
        assert np.isfinite(summary["final_loss"]) and summary["model"] == variant
    assert split.calls == [3] * 4


def test_mf_trains_with_its_head_fixed_through_a_resume(prepared, tmp_path):
    common = ["--data", prepared, "--model", "mf", *SMALL, "--checkpoint_dir", tmp_path]
    train(*common, "-e", "1")
    summary = train(*common, "-e", "2", "--resume")
    state = torch.load(tmp_path / "model.pth", weights_only=True)["model"]
    assert summary["model"] == "mf" and torch.equal(state["final.weight"], torch.ones(1, 8))


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


def test_a_run_killed_before_its_first_last_pth_gets_advice_that_works(tmp_path):
    """Killed between the first model.pth and the first last.pth: neither message may send to the other."""
    folder = write_byo_dataset(tmp_path / "byo")
    ckpt = tmp_path / "ckpt"
    common = ["--data", folder, *SMALL, "-b", "300", "-k", "2", "-e", "1", "--checkpoint_dir", ckpt]
    train(*common)
    (ckpt / "last.pth").unlink()
    for flags in ([], ["--resume"]):
        message = train_fails(*common, *flags)
        assert "no last.pth to resume" in message and "pass --resume" not in message, message
        assert f"--overwrite --init_from {ckpt / 'model.pth'}" in message, message
    train(*common, "--overwrite", "--init_from", ckpt / "model.pth")
    assert (ckpt / "last.pth").is_file()


def test_ctrl_c_is_one_line_and_leaves_whole_checkpoints_that_resume_at_the_next_epoch(tmp_path):
    """Whole: last.pth holds the full training state of the epoch it names (weights, optimizer, scaler, the
    report of every epoch up to it), model.pth a best epoch's weights of the same model, and --resume continues
    from last.pth at the next epoch."""
    folder, ckpt = write_byo_dataset(tmp_path / "byo"), tmp_path / "ckpt"
    common = ["--data", folder, *SMALL, "-b", "300", "-k", "2", "--checkpoint_dir", ckpt]
    result = interrupt("training", *common, "-e", "1000", ready=lambda: (ckpt / "last.pth").exists())
    assert result.returncode == 130 and result.stderr.strip().splitlines()[-1] == "interrupted", result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not [p for p in ckpt.iterdir() if ".tmp-" in p.name]
    last = torch.load(ckpt / "last.pth", weights_only=True)
    best = torch.load(ckpt / "model.pth", weights_only=True)
    epoch = last["meta"]["epoch"]
    assert {"model", "optimizer", "scaler", "meta"} <= set(last), set(last)
    assert last["optimizer"]["state"] and last["optimizer"]["param_groups"], "no optimizer state to resume"
    assert [r["epoch"] for r in last["meta"]["report"]["history"]] == list(range(epoch + 1))
    assert best["model"].keys() == last["model"].keys() and 0 <= best["meta"]["epoch"] <= epoch
    resumed = loop.run([*map(str, common), "-e", str(epoch + 2), "--resume"])
    assert resumed["epochs"] == epoch + 2  # the interrupted run's epochs and one more: none lost, none repeated
    history = torch.load(ckpt / "last.pth", weights_only=True)["meta"]["report"]["history"]
    assert [r["epoch"] for r in history] == list(range(epoch + 2))
    assert history[:-1] == last["meta"]["report"]["history"]


def test_a_second_run_into_a_running_runs_folder_refuses(tmp_path):
    """Two real trainings into one --checkpoint_dir: the second refuses naming the first, whose checkpoints
    and log stay its own (once both exited 0, their epochs interleaved and model.pth/last.pth mixed runs)."""
    folder, ckpt = write_byo_dataset(tmp_path / "byo"), tmp_path / "ckpt"
    common = ["--data", folder, *SMALL, "-b", "300", "-k", "2", "--checkpoint_dir", ckpt, "--log_path", ckpt / "log.jsonl"]
    with paused("training", *common, "-e", "3", "--seed", "1", ready=lambda: (ckpt / "model.pth").exists()) as first:
        message = train_fails(*common, "-e", "1", "--seed", "2", "--overwrite")
    assert message.startswith(f"error: {ckpt} is in use by another run (pid {first.pid}: "), message
    assert finish(first).returncode == 0
    for name in ("model.pth", "last.pth"):
        assert torch.load(ckpt / name, weights_only=True)["meta"]["args"]["seed"] == 1
    assert [json.loads(line)["epoch"] for line in (ckpt / "log.jsonl").read_text().splitlines()] == [0, 1, 2]


def test_load_checkpoint_path_in_train_mode_starts_from_those_weights(tmp_path):
    """DLE semantics: the weights are loaded before training (a tiny learning rate keeps them)."""
    folder = write_byo_dataset(tmp_path / "byo")
    first = train("--data", folder, "-e", "6", "-b", "300", "-f", "8", "--layers", "16", "8", "-l", "0.02", "-k", "2",
                  "--checkpoint_dir", tmp_path / "a")
    again = train("--data", folder, "-e", "1", "-b", "300", "-l", "1e-9", "-k", "2",
                  "--load_checkpoint_path", tmp_path / "a" / "model.pth")
    assert first["best_hr"] > first["toppop_hr"] + 0.2
    assert again["best_hr"] == pytest.approx(first["best_hr"], abs=0.02)


def test_starting_weights_are_kept_when_no_epoch_beats_them_on_validation(tmp_path, trained, prepared):
    """Weights handed to training (--init_from, pretrained parts) are a candidate: a run that only makes them worse
    returns them, as best_epoch -1, and model.pth holds them."""
    summary = train("--data", prepared, "--init_from", trained, "-e", "1", "--steps_per_epoch", "3", "-l", "1.0",
                    "--checkpoint_dir", tmp_path / "run", "--log_path", tmp_path / "log.jsonl")
    assert summary["best_epoch"] == -1
    epoch = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert epoch["valid_hr"] < summary["best_valid_hr"]
    best = torch.load(tmp_path / "run" / "model.pth", weights_only=True)
    start = torch.load(trained, weights_only=True)["model"]
    assert best["meta"]["epoch"] == -1
    for name, tensor in start.items():
        torch.testing.assert_close(best["model"][name], tensor, atol=0, rtol=0, msg=name)
    # the test figures are the starting weights': the same as evaluating the given checkpoint
    tested = train("--data", prepared, "--mode", "test", "--load_checkpoint_path", trained)
    assert summary["best_hr"] == pytest.approx(tested["best_hr"], abs=1e-9)
    # starting weights already at --threshold: nothing to train
    result = run_module("training", "--data", prepared, "--init_from", trained, "-e", "3", "--threshold", "0",
                        "--checkpoint_dir", tmp_path / "none")
    assert result.returncode == 0 and "no training" in result.stderr, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["best_epoch"] == -1


@pytest.mark.parametrize("flag", ["--checkpoint_dir", "--log_path", "--tensorboard"])
def test_unwritable_output_is_one_line(tmp_path, flag):
    folder = write_byo_dataset(tmp_path / "byo")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert "cannot" in train_fails("--data", folder, "-e", "1", *SMALL, "-b", "300", "-k", "2", flag, blocker / "out")


def test_a_tensorboard_folder_nobody_may_write_is_one_line(tmp_path):
    """An existing folder where no file can be made (once a traceback from TensorBoard's writer thread);
    /proc/self refuses even root, who may write into any chmod 555 folder."""
    folder = write_byo_dataset(tmp_path / "byo")
    result = run_module("training", "--data", folder, "-e", "1", *SMALL, "-b", "300", "-k", "2",
                        "--tensorboard", "/proc/self", timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write --tensorboard /proc/self")


def test_a_full_disk_is_one_line_and_leaves_no_half_checkpoint(tmp_path):
    """Once torch's zip writer ended this in a RuntimeError traceback. A file size limit fails writes as a
    full disk does (EFBIG for ENOSPC) without root; the log and plot stay under it, the checkpoint does not."""
    folder, ckpt = write_byo_dataset(tmp_path / "byo"), tmp_path / "ckpt"
    result = run_module("training", "--data", folder, "-e", "1", "-b", "300", "-k", "2", "-f", "64", "--layers",
                        "256", "64", "--checkpoint_dir", ckpt, timeout=300, file_size_limit=100_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: cannot write {ckpt / 'model.pth'}: File too large"
    assert not [p.name for p in ckpt.iterdir() if p.name.endswith(".pth") or ".tmp-" in p.name]


def test_the_settings_are_resolved_before_the_first_epoch_said_first_and_saved(prepared, tmp_path):
    """-b sized to the data is part of the settings: said on the first lines, saved in every checkpoint and
    the summary, the same everywhere."""
    result = run_module("training", "--data", prepared, "-e", "1", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    said = next(i for i, line in enumerate(lines) if " settings: " in line)
    assert said < next(i for i, line in enumerate(lines) if re.search(r" epoch +0  loss", line))
    summary = json.loads(result.stdout.splitlines()[-1])
    sized = summary["settings"]["batch_size"]
    assert f"--batch_size {sized}," in lines[said] and "--layers 16 8," in lines[said] and "--factors 8," in lines[said]
    for name in ("model.pth", "last.pth"):
        assert torch.load(tmp_path / name, weights_only=True)["meta"]["args"] == summary["settings"]

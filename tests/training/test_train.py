"""Training on real data through the real loader: accuracy, resume, AMP, test mode, bad input."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training.data.pairs import TrainStream
from training.runtime import Runtime

from ..helpers import write_byo_dataset
from ..helpers import run_module

SMALL = ["-b", "4096", "-f", "8", "--layers", "16", "8", "-l", "0.01"]


def train(*args, timeout=600):
    result = run_module("training", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def fails(*args):
    result = run_module("training", *args, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


def test_learns_the_byo_dataset_far_above_toppop(tmp_path):
    """BYO csv chunks with other feature names and 6-row series; tastes popularity cannot see."""
    folder = write_byo_dataset(tmp_path / "byo")
    log = tmp_path / "run" / "log.jsonl"
    summary = train("--data", folder, "-e", "8", "-b", "300", "-f", "8", "--layers", "16", "8", "-l", "0.02",
                    "-k", "2", "--threshold", "0.99", "--checkpoint_dir", tmp_path / "ckpt", "--log_path", log,
                    "--tensorboard", tmp_path / "tb")
    assert summary["best_hr"] > summary["toppop_hr"] + 0.3, summary
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


def test_synthetic_end_to_end_beats_toppop(prepared, tmp_path):
    summary = train("--data", prepared, "-e", "8", "-b", "2048", "-f", "16", "--layers", "64", "32", "-l", "0.005")
    assert summary["best_hr"] > summary["toppop_hr"] + 0.08, summary


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


def test_amp_path_runs(prepared):
    summary = train("--data", prepared, "-e", "1", *SMALL, "--amp")
    assert 0 <= summary["best_hr"] <= 1 and np.isfinite(summary["final_loss"])


def test_grad_accumulation_and_variants(prepared):
    for variant in ("gmf", "mlp"):
        summary = train("--data", prepared, "-e", "1", *SMALL, "--model", variant, "--grads_accumulated", "2")
        assert np.isfinite(summary["final_loss"])


def test_negatives_are_uniform_on_the_device(prepared):
    spec = FeatureSpec.from_yaml(prepared)
    stream = TrainStream(spec, positives_per_rank=2048, negatives=4, dist=Runtime(), seed=0)
    users, items, labels = next(iter(stream.epoch(0)))
    positives = int(labels.sum())
    assert positives == 2048 and len(labels) == 5 * 2048
    assert torch.equal(users[2048:], users[:2048].repeat(4))
    neg = items[2048:].double()
    card = spec.item_cardinality
    assert neg.min() >= 0 and neg.max() < card
    assert abs(neg.mean().item() - (card - 1) / 2) < 0.05 * card  # mean of U{0..card-1}
    stream.close()


def _steps_per_rank(folder, world):
    spec = FeatureSpec.from_yaml(folder)
    counts = []
    for rank in range(world):
        stream = TrainStream(spec, 512, 1, Runtime(rank=rank, world=world), seed=0)
        loader = stream._loader(0)
        counts.append(len(loader))
    return counts


def test_uneven_partitions_are_equalised(tmp_path, synthetic_raw):
    """3 partitions over 2 ranks: shards differ, but every rank runs the longest shard's steps."""
    from etl.prepare import PrepareConfig, prepare

    prepare(PrepareConfig(input=synthetic_raw, output=tmp_path / "d", workflow_dir=tmp_path / "w", partitions=3,
                          negatives=20, quiet=True))
    assert len(set(_steps_per_rank(tmp_path / "d", 2))) == 2  # the loader alone would hang DDP


BAD = {
    "rows not a multiple of the series": (
        lambda f: pd.read_csv(f / "test.csv").iloc[:-1].to_csv(f / "test.csv", index=False), "not a multiple"),
    "series without exactly one positive": (
        lambda f: pd.read_csv(f / "test.csv").assign(clicked=0.0).to_csv(f / "test.csv", index=False),
        "exactly one positive"),
    "ids beyond cardinality": (
        lambda f: pd.read_csv(f / "train_ids_1.csv").assign(product=99).to_csv(f / "train_ids_1.csv", index=False),
        "cardinality is 40"),
    "missing channel": (
        lambda f: (f / "feature_spec.yaml").write_text(
            (f / "feature_spec.yaml").read_text().replace("label_ch: [clicked]", "")), "label_ch is missing"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_data_fails_with_one_line(tmp_path, case):
    folder = write_byo_dataset(tmp_path / "byo")
    edit, message = BAD[case]
    edit(folder)
    assert message in fails("--data", folder, "-e", "1", *SMALL)


def test_checkpoint_from_another_dataset_or_corrupt(tmp_path, prepared):
    folder = write_byo_dataset(tmp_path / "byo")
    train("--data", folder, "-e", "1", *SMALL, "--checkpoint_dir", tmp_path / "ckpt")
    message = fails("--mode", "test", "--data", prepared, "--load_checkpoint_path", tmp_path / "ckpt" / "model.pth")
    assert "belongs to another dataset" in message
    message = fails("--data", folder, "-e", "2", "-b", "4096", "-f", "8", "--layers", "32", "16", "--checkpoint_dir",
                    tmp_path / "ckpt", "--resume")
    assert "architecture" in message
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage" * 100)
    assert "corrupt" in fails("--mode", "test", "--data", folder, "--load_checkpoint_path", corrupt)

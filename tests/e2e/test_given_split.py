"""A user's own split from raw files to figures: `etl prepare --test-input` (the per-user lines format of the
public benchmarks), `python -m training` chosen on validation Recall@K, and its test figures recomputed by an
independent evaluator from `training.recommend --all-users --history train` output and the raw test file."""
import numpy as np
import pandas as pd

from ..helpers import run_module, train


def _write_lines(path, rows):
    users = {}
    for user, item in rows:
        users.setdefault(user, []).append(item)
    path.write_text("".join(f"{u} {' '.join(map(str, items))}\n" for u, items in users.items()))


def test_figures_agree_with_an_independent_evaluator_on_recommend_output(tmp_path):
    rng = np.random.default_rng(5)
    train_rows, test_rows = [], []
    for user in range(100, 180):  # raw ids that are not the encoded indices
        liked = rng.permutation([1000 + i for i in range(48) if i % 4 == user % 4])
        train_rows += [(user, int(i)) for i in liked[:8]]
        test_rows += [(user, int(i)) for i in liked[8:11]]
    _write_lines(tmp_path / "train.txt", train_rows)
    _write_lines(tmp_path / "test.txt", test_rows)
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "top.csv"
    prepared = run_module("etl", "prepare", "--input", tmp_path / "train.txt", "--test-input", tmp_path / "test.txt",
                          "--output", data, "--format", "lines")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    k = 5
    summary = train("--data", data, "--model", "mf", "-e", "2", "-k", str(k), "--checkpoint_dir", run)
    result = run_module("training.recommend", "--checkpoint", run / "model.pth", "--data", data, "--all-users",
                        "--history", "train", "--topk", str(k), "--output", out)
    assert result.returncode == 0, result.stderr[-2000:]
    top = pd.read_csv(out).sort_values(["user", "rank"])
    assert (top["source"] == "model").all()
    truth = pd.DataFrame(test_rows, columns=["user", "item"]).groupby("user")["item"].apply(set)
    had = pd.DataFrame(train_rows, columns=["user", "item"]).groupby("user")["item"].apply(set)
    recall, ndcg = [], []
    for user, items in top.groupby("user")["item"]:
        listed, targets = items.tolist(), truth[user]
        assert not set(listed) & had[user]  # train items are never recommended back
        hits = [item in targets for item in listed]
        recall.append(sum(hits) / len(targets))
        ndcg.append(sum(1 / np.log2(r + 2) for r, h in enumerate(hits) if h)
                    / sum(1 / np.log2(r + 2) for r in range(min(k, len(targets)))))
    assert len(recall) == len(truth)
    assert abs(summary["best_recall"] - np.mean(recall)) < 1e-6
    assert abs(summary["best_ndcg"] - np.mean(ndcg)) < 1e-6

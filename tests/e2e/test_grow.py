"""The grow journey: fit on an older period, grow the workflow on a newer one with new users and items,
grow the model onto it (old scores unchanged), continue training, recommend to old and new users."""
import json

import pandas as pd
import pytest
import torch

from contract.feature_spec import FeatureSpec
from training.args import for_family, parse_args
from training.checkpoint import read
from training.runtime import shutdown, start_runtime
from training.tasks import build_model, model_for, task_for
from training.train import Trainer

from ..helpers import run_module, train, train_fails, vocabulary

FAMILIES = {  # family -> (how its data is prepared, its small flags)
    "neumf": ({}, ["-b", "1024", "-f", "8", "--layers", "16", "8"]),
    "multvae": ({"split": "users", "heldout_users": 20}, ["-b", "64", "--layers", "32", "8"]),
}


def _grown_model(data, init_from, tmp_path):
    """The model `python -m training --data DATA --init_from OLD` starts from, before any training step."""
    args = parse_args(["--data", str(data), "--init_from", str(init_from), "--checkpoint_dir", str(tmp_path / "x")])
    spec = FeatureSpec.from_yaml(data)
    runtime = start_runtime()
    task, settings = for_family(args, model_for(spec, None))
    trainer = Trainer(settings, runtime, task, spec)
    try:
        return trainer.model.eval()
    finally:
        trainer.close()
        shutdown(runtime)


def _recommend(checkpoint, new, old, output) -> tuple[pd.DataFrame, str]:
    result = run_module("training.recommend", "--checkpoint", checkpoint, "--data", new, old, "--all-users",
                        "--topk", "10", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    return pd.read_csv(output, dtype={"user": str, "item": str}), result.stderr


@pytest.mark.parametrize("family", FAMILIES)
def test_grow_keeps_old_scores_and_new_users_and_items_get_recommended(tmp_path, periods, family):
    from etl.prepare import PrepareConfig, prepare

    layout, flags = FAMILIES[family]
    old, new = tmp_path / "old", tmp_path / "new"
    prepare(PrepareConfig(input=periods[0], output=old, min_rating=3.5, negatives=20, quiet=True, **layout))
    prepare(PrepareConfig(input=periods[1], output=new, workflow=old / "workflow", grow=True, negatives=20,
                          quiet=True, **layout))
    old_spec, new_spec = FeatureSpec.from_yaml(old), FeatureSpec.from_yaml(new)
    for column in ("user_id", "item_id"):  # every old id keeps its index
        before = vocabulary(old / "workflow", column)
        assert vocabulary(new / "workflow", column).loc[before.index].equals(before)
    assert new_spec.user_cardinality > old_spec.user_cardinality and new_spec.item_cardinality > old_spec.item_cardinality

    train("--data", old, "-e", "2", *flags, "--checkpoint_dir", tmp_path / "ckpt-old")
    before = read(tmp_path / "ckpt-old" / "model.pth")
    added_items = new_spec.item_cardinality - old_spec.item_cardinality
    old_model = build_model(before["meta"]["architecture"], before["meta"]["cardinalities"]).eval()
    old_model.load_state_dict(before["model"])
    grown = _grown_model(new, tmp_path / "ckpt-old" / "model.pth", tmp_path)
    task, first = task_for(family), old_spec.first_index
    users = torch.arange(first, old_spec.user_cardinality)
    history = torch.eye(old_spec.item_cardinality)[torch.arange(len(users)) % (old_spec.item_cardinality - first) + first]
    with torch.no_grad():  # old users' scores of old items (Mult-VAE: from a history of old items)
        expected = task.score_users(old_model, users, history.to_sparse_csr())
        padded = torch.nn.functional.pad(history, (0, new_spec.item_cardinality - old_spec.item_cardinality))
        found = task.score_users(grown, users, padded.to_sparse_csr())[:, :old_spec.item_cardinality]
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-6)

    # before it is grown, the old model answers on the grown data: NeuMF has no row for the new users, Mult-VAE
    # folds their histories in; neither recommends the new items
    old_users = set(vocabulary(old / "workflow", "user_id").astype(str))
    old_items = set(vocabulary(old / "workflow", "item_id").astype(str))
    recs, err = _recommend(tmp_path / "ckpt-old" / "model.pth", new, old, tmp_path / "recs-old.csv")
    new_users = recs[~recs["user"].isin(old_users)]
    assert not set(recs.loc[recs["source"] == "model", "item"]) - old_items
    if family == "neumf":
        assert (recs.loc[recs["user"].isin(old_users), "source"] == "model").all()
        assert (new_users["source"] == "popularity").all()
        assert "are newer than the model (it has no row for them): they get the popular items until it is grown" in err
    else:
        assert (new_users["source"] == "model").any()

    # --mode test measures the older model on the newer data, grown as --init_from grows it (and says so)
    result = run_module("training", "--mode", "test", "--data", new, "--load_checkpoint_path",
                        tmp_path / "ckpt-old" / "model.pth")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "predates this data's grown workflow" in result.stderr and f"{added_items:,} item rows" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["best_ndcg"] is not None

    result = run_module("training", "--data", new, "-e", "3", *flags, "--init_from", tmp_path / "ckpt-old" / "model.pth",
                        "--checkpoint_dir", tmp_path / "ckpt-new")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{added_items:,} item rows added" in result.stderr
    after = read(tmp_path / "ckpt-new" / "model.pth")
    assert after["meta"]["cardinalities"] == new_spec.table_sizes and after["meta"]["workflow_id"] == new_spec.workflow_id

    recs, _ = _recommend(tmp_path / "ckpt-new" / "model.pth", new, old, tmp_path / "recs.csv")
    by_model = recs[recs["source"] == "model"]
    assert set(by_model["user"]) - old_users, "no new user got the model's recommendations"
    assert set(by_model["item"]) - old_items, "no new item was recommended"


def test_a_checkpoint_of_a_workflow_the_data_does_not_extend_is_refused(grown, trained):
    message = train_fails("--data", grown[1], "-e", "1", "--init_from", trained)
    assert f"checkpoint {trained} was trained on data of workflow" in message and "does not extend" in message

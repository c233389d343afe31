"""The reuse journey: transform newer data with the saved workflow, continue training from a checkpoint."""
import torch

from etl.__main__ import main as etl_main

from ..etl.test_transform import _new_ratings
from ..helpers import run_module


def test_continue_training_on_transformed_data(tmp_path, prepared, trained):
    raw, _, _ = _new_ratings(tmp_path, prepared)
    out = tmp_path / "encoded"
    assert etl_main(["transform", "--workflow", str(prepared.parent / "workflow"), "--input", str(raw),
                     "--output", str(out), "--quiet"]) == 0
    result = run_module("torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training",
                        "--data", out, "-e", "1", "-b", "20", "-f", "8", "--layers", "16", "8",
                        "--init_from", trained, "--checkpoint_dir", tmp_path / "continued")
    assert result.returncode == 0, result.stderr[-2000:]
    before = torch.load(trained, weights_only=True)
    after = torch.load(tmp_path / "continued" / "model.pth", weights_only=True)
    assert after["meta"]["cardinalities"] == before["meta"]["cardinalities"]
    assert not torch.equal(after["model"]["final.weight"], before["model"]["final.weight"])

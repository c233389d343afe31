"""The default batch size follows the data: about 64 steps per epoch at every size."""
import pytest

from contract.feature_spec import FeatureSpec
from training.defaults import batch_size_for

from ..helpers import run_module


@pytest.mark.parametrize("positives, expected", [
    (95_000, 8192),          # ml-100k: a fixed 65,536 would give 8 steps per epoch
    (985_000, 65536),        # ml-1m: the batch the defaults were tuned with
    (19_800_000, 2**20),     # ml-20m: DLE's batch, the upper bound
    (500, 1024),             # a toy dataset: the lower bound
])
def test_batch_size_for_dataset_sizes(positives, expected):
    assert batch_size_for(positives, 4) == expected


def test_a_run_without_b_says_what_it_chose(prepared, tmp_path):
    result = run_module("training", "--data", prepared, "-e", "1", "-f", "8", "--layers", "16", "8",
                        "--checkpoint_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if "chosen for" in line)
    positives = len(FeatureSpec.from_yaml(prepared).read("train"))
    used = batch_size_for(positives, 4) // 5 * 5  # whole positives with their 4 negatives
    assert f"-b {used} chosen for {positives:,} train positives: about {positives * 5 / used:.0f} steps" in line

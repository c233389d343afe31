"""Notebook 5 (which model for my data) executes top to bottom exactly as shipped, in a fresh kernel, without
notebooks 1-4: it runs `python -m training.compare` on synthetic data and shows its table and plot."""
import re

from .notebook_runner import has_image, run_as_shipped

NAME = "05-compare.ipynb"


def test_compare_notebook_runs_as_shipped(tmp_path):
    nb, text = run_as_shipped(tmp_path, NAME)
    assert "-m training.compare --data" in text and "all 600 test users" in text
    for model in ("neumf", "mf", "multvae", "ease", "toppop"):
        assert re.search(rf"(^|\s){model}: HR@10", text, re.M) and re.search(rf"^{model} +100 +0\.\d{{4}}", text, re.M), model
    assert "EASE lambda" in text and "chosen on validation" in text and "results.csv" in text
    assert has_image(nb)
    out = tmp_path / "data" / "notebooks" / "synthetic-compare" / "compare"
    assert all((out / model / "model.pth").is_file() for model in ("neumf", "mf", "multvae"))

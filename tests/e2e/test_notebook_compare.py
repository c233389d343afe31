"""Notebook 5 (which model for my data) executes top to bottom exactly as shipped, in a fresh kernel, without
notebooks 1-4: it runs `python -m training.compare` on synthetic data and shows its table and plot.

It runs from a copy of notebooks/ under a temporary folder, so its shipped WORK ('../data/notebooks')
lands there instead of in the checkout.
"""
import re
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAME = "05-compare.ipynb"


def test_compare_notebook_runs_as_shipped(tmp_path):
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    nb = nbformat.read(folder / NAME, as_version=4)
    assert nb == nbformat.read(NOTEBOOKS / NAME, as_version=4), "the copy must be the shipped notebook"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "-m training.compare --data" in text and "all 600 test users" in text
    for model in ("neumf", "multvae", "ease", "toppop"):
        assert f"{model}: HR@10" in text and re.search(rf"^{model} +100 +0\.\d{{4}}", text, re.M), model
    assert "EASE lambda" in text and "chosen on validation" in text and "results.csv" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in getattr(c, "outputs", []))
    out = tmp_path / "data" / "notebooks" / "synthetic-compare" / "compare"
    assert (out / "neumf" / "model.pth").is_file() and (out / "multvae" / "model.pth").is_file()

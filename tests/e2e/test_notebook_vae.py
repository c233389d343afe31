"""Notebook 4 (VAE-CF) executes top to bottom exactly as shipped, in a fresh kernel, without notebooks 1-3.

It runs from a copy of notebooks/ under a temporary folder, so its shipped WORK ('../data/notebooks')
lands there instead of in the checkout.
"""
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAME = "04-vae-cf.ipynb"


def test_vae_notebook_runs_as_shipped(tmp_path):
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    nb = nbformat.read(folder / NAME, as_version=4)
    assert nb == nbformat.read(NOTEBOOKS / NAME, as_version=4), "the copy must be the shipped notebook"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "EncodedKeyGroupby" in text and "multivalued: true" in text and "sparse_csr" in text
    assert "NDCG@100" in text and "Mult-VAE" in text and "popularity" in text
    assert "0 of " in text and "recommendations were rated by their user before" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in getattr(c, "outputs", []))
    data = tmp_path / "data" / "notebooks" / "synthetic-lists"
    assert (data / "run" / "model.pth").is_file() and (data / "prepared" / "workflow" / "workflow.pkl").is_file()

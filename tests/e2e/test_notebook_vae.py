"""Notebook 4 (VAE-CF) executes top to bottom exactly as shipped, in a fresh kernel, without notebooks 1-3."""
from .notebook_runner import has_image, run_as_shipped

NAME = "04-vae-cf.ipynb"


def test_vae_notebook_runs_as_shipped(tmp_path):
    nb, text = run_as_shipped(tmp_path, NAME)
    assert "EncodedKeyGroupby" in text and "multivalued: true" in text and "sparse_csr" in text
    assert "NDCG@100" in text and "Mult-VAE" in text and "popularity" in text
    assert "0 of " in text and "recommendations were rated by their user before" in text
    assert has_image(nb)
    data = tmp_path / "data" / "notebooks" / "synthetic-lists"
    assert (data / "run" / "model.pth").is_file() and (data / "prepared" / "workflow" / "workflow.pkl").is_file()

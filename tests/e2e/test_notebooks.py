"""The notebooks execute top to bottom exactly as shipped (their own parameters), in a fresh kernel.

They run from a copy of notebooks/ under a temporary folder, so their shipped WORK
('../data/notebooks') lands there instead of in the checkout.
"""
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(folder: Path, name: str):
    nb = nbformat.read(folder / name, as_version=4)
    assert nb == nbformat.read(NOTEBOOKS / name, as_version=4), "the copy must be the shipped notebook"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _outputs(nb) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_run_in_order_as_shipped(tmp_path):
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    data = tmp_path / "data" / "notebooks" / "synthetic"

    etl = _outputs(_run(folder, "01-etl.ipynb"))
    assert "Categorify" in etl and "test_samples_per_series: 101" in etl and "DATASET = 'synthetic'" in etl
    assert (data / "older" / "workflow" / "workflow.pkl").is_file()

    training = _run(folder, "02-training.ipynb")
    assert any(o.get("data", {}).get("image/png") for c in training.cells for o in getattr(c, "outputs", []))
    assert "best_hr" in _outputs(training)

    reuse = _outputs(_run(folder, "03-new-data.ipynb"))
    grew = re.search(r"0 dropped: the grown workflow added ([\d,]+) new users and ([\d,]+) new items", reuse)
    assert grew and min(int(n.replace(",", "")) for n in grew.groups()) > 0, reuse[:3000]
    assert "HR@10 on the newer period" in reuse
    assert "0 of " in reuse and "were rated by their user before" in reuse and "popularity" in reuse
    assert (data / "run-newer" / "model.pth").is_file()
    assert "the user who joined in the newer period gets: model\n" in reuse  # the grown model has their row
    newer = pd.read_parquet(data / "newer" / "test")
    assert newer["label"].sum() > 100  # a real evaluation on the newer period, not a handful of series

"""Every notebook executes top to bottom, on small synthetic data, in a fresh kernel."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SMALL = {
    "01-etl.ipynb": "USERS, ITEMS, ROWS = 300, 200, 15_000\nNEGATIVES = 20\nSEED = 0\nRAW = None",
    "02-training.ipynb": "EPOCHS = 2\nEXTRA_ARGS = ['-b', '8192', '-f', '8', '--layers', '16', '8']",
    "03-new-data.ipynb": "USERS, ITEMS, ROWS = 320, 200, 8_000\nEPOCHS = 1\nSHOW_USERS = 2",
}


def _run(name: str, work: Path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = f"WORK = {str(work)!r}\n{SMALL[name]}"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _outputs(nb) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_run_in_order(tmp_path):
    etl = _outputs(_run("01-etl.ipynb", tmp_path))
    assert "Categorify" in etl and "test_samples_per_series: 21" in etl
    training = _run("02-training.ipynb", tmp_path)
    assert any(o.get("data", {}).get("image/png") for c in training.cells for o in getattr(c, "outputs", []))
    assert "best_hr" in _outputs(training)
    reuse = _outputs(_run("03-new-data.ipynb", tmp_path))
    assert "unseen users" in reuse and "popularity" in reuse
    assert (tmp_path / "run-next" / "model.pth").is_file()

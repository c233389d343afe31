"""Run one shipped notebook top to bottom in a fresh kernel, from a copy of notebooks/ under a temporary
folder, so its shipped WORK ('../data/notebooks') lands there instead of in the checkout."""
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_as_shipped(tmp_path: Path, name: str):
    """(the executed notebook, the text of its outputs)."""
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    nb = nbformat.read(folder / name, as_version=4)
    assert nb == nbformat.read(NOTEBOOKS / name, as_version=4), "the copy must be the shipped notebook"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    return nb, text


def has_image(nb) -> bool:
    return any(o.get("data", {}).get("image/png") for c in nb.cells for o in getattr(c, "outputs", []))

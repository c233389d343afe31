"""Loss and HR/NDCG per epoch as one PNG."""
from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path: Path, k: int) -> Path:
    # A bare Figure (no pyplot) leaves the caller's matplotlib backend alone, e.g. in a notebook.
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["loss"] for r in history], marker="o")
    left.set(title="train loss (BCE)", xlabel="epoch")
    if any("hr" in r for r in history):
        right.plot(epochs, [r.get("hr") for r in history], marker="o", label=f"HR@{k}")
        right.plot(epochs, [r.get("ndcg") for r in history], marker="o", label=f"NDCG@{k}")
    if any("valid_hr" in r for r in history):
        right.plot(epochs, [r.get("valid_hr") for r in history], marker="o", ls="--", label=f"validation HR@{k}")
    if any("hr" in r for r in history):
        right.legend()
    right.set(title="evaluation (test; validation dashed)", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

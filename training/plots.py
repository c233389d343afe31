"""One PNG per run, for every family: the training loss (and its parts) per epoch, and the figures that
pick the best epoch, with the popularity baseline on the same split and the chosen epoch marked; and the
figures by K of every model `python -m training.compare` compared. Plots read records; they know no report."""
from __future__ import annotations

from pathlib import Path

from .labels import label
from .selection import START_EPOCH


def plot_history(history: list[dict], path: Path, summary: dict, metrics: tuple[str, ...], loss_parts: tuple[str, ...],
                 k: int, prefix: str, split: str | None) -> Path:
    """`history`: the epoch records; `summary`: the run's (baselines, best_epoch); `metrics` drawn as
    `prefix + metric` on the choosing `split`."""
    # A bare Figure (no pyplot) leaves the caller's matplotlib backend alone, e.g. in a notebook.
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["loss"] for r in history], marker="o", label="loss")
    for part in loss_parts:
        if part in history[0]:
            left.plot(epochs, [r[part] for r in history], marker=".", label=part)
    left.set(title="training loss", xlabel="epoch")
    left.legend()
    for metric in metrics:
        if any(prefix + metric in r for r in history):
            line = right.plot(epochs, [r.get(prefix + metric) for r in history], marker="o", label=label(metric, k))[0]
            baseline = summary.get(f"toppop_{prefix}{metric}")
            if baseline is not None:
                right.axhline(baseline, ls="--", color=line.get_color(), alpha=0.6, label=f"TopPop {label(metric, k)}")
    if summary.get("best_epoch") is not None and split:
        chosen = "the starting weights" if summary["best_epoch"] == START_EPOCH else f"epoch {summary['best_epoch']}"
        right.axvline(summary["best_epoch"], ls=":", color="gray", label=f"chosen: {chosen}")
    right.set(title=f"{split or 'no'} evaluation" + (" (no validation mapping)" if split == "test" else ""),
              xlabel="epoch")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_comparison(results: dict[str, dict], ks, path: Path, title: str) -> Path:
    """`python -m training.compare`: HR, NDCG, Recall and coverage by K, one line per model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4))
    for ax, metric in zip(fig.subplots(1, 4), ("hr", "ndcg", "recall", "coverage")):
        for model, figures in results.items():
            ax.plot(ks, [figures[f"{metric}@{k}"] for k in ks], marker="o", label=model)
        ax.set(title=label(metric, "K") if metric != "coverage" else "coverage@K", xlabel="K", xscale="log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
    fig.axes[0].legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

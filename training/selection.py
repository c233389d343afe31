"""The loop's choice of the model it returns: the epoch, or the weights training started from, with the best
figure on the split that chooses (validation; test only where nothing else exists and the run says so).
Owned by the loop (`train.py`); the report only shows what it chose."""
from __future__ import annotations

from .labels import is_metric

START_EPOCH = -1  # best_epoch when no epoch beat the weights training started from (pretrained parts, --init_from)


class Selection:
    def __init__(self, split: str | None, metric: str):
        self.split, self.metric = split, metric  # split None: nothing is evaluated, the last epoch is kept
        self.best: dict = {"best_epoch": None, "time_to_best": None, "selected_on": None}

    @property
    def prefix(self) -> str:
        """What the choosing split's figures are called in an epoch record."""
        return "valid_" if self.split == "validation" else ""

    @property
    def key(self) -> str:
        return self.prefix + self.metric

    @property
    def best_figure(self) -> float | None:
        return self.best.get("best_" + self.key)

    def _best_of(self, record: dict, elapsed: float, selected_on) -> dict:
        """The summary's best-so-far entry for an epoch record (or the starting weights' figures)."""
        return {"best_epoch": record["epoch"], "time_to_best": elapsed, "selected_on": selected_on,
                **{f"best_{m}": v for m, v in record.items()
                   if m.startswith(self.prefix) and is_metric(m.removeprefix(self.prefix))}}

    def start(self, found: dict, elapsed: float) -> None:
        """The starting weights' figures: the best so far, as epoch START_EPOCH (an epoch must beat them)."""
        self.best = self._best_of({"epoch": START_EPOCH, **found}, elapsed, self.split)

    def consider(self, record: dict) -> bool:
        """Whether an epoch's record is the best so far (always, when nothing is evaluated)."""
        best = self.best_figure
        improved = self.key not in record or best is None or record[self.key] > best
        if improved:
            self.best = self._best_of(record, record["elapsed_seconds"], self.split if self.key in record else None)
        return improved

    def reached(self, figures: dict, threshold: float) -> bool:
        return figures.get(self.key, 0.0) >= threshold

    def restore(self, best: dict) -> None:
        self.best = dict(best)
        if "chosen_on" in self.best:  # a Mult-VAE checkpoint written before the families shared this loop:
            self.best["selected_on"] = self.best.pop("chosen_on")  # chosen_on, valid_ndcg@100 / test_ndcg@100
            for key in [k for k in self.best if "_ndcg@" in k]:
                self.best["best_" + key.split("@")[0].removeprefix("test_")] = self.best.pop(key)


def with_test_figures(best: dict, metrics: dict) -> dict:
    """The choice with its test figures: `best_<m>`, and the other protocols' `full_<m>` as they are."""
    return {**best, **{(m if m.startswith("full_") else f"best_{m}"): v for m, v in metrics.items() if "eval_" not in m}}

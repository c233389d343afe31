"""What a run tells people, for every family: timestamped lines, a JSON line per epoch, TensorBoard
scalars, a plot, and the summary that ends as the last stdout line.

Key names are the same for every family: an epoch record holds `valid_<m>`, the summary `best_<m>` (test
figures of the model chosen on validation, never on test), `best_valid_<m>`, `toppop_<m>`, `selected_on`,
`validation` (where the validation set came from), `best_epoch`; `<m>` is hr, ndcg, recall or recall@R.
"""
from __future__ import annotations

import json
import sys
import time

from contract.atomic import check_writable_folder
from contract.errors import UserError

from .runtime import Runtime

FEW_SERIES = 100  # test series (or held-out users) below which the summary warns that the figures are noise
START_EPOCH = -1  # best_epoch when no epoch beat the weights training started from (pretrained parts, --init_from)


def label(metric: str, k: int) -> str:
    """hr -> HR@10, recall@20 -> Recall@20, full_hr -> full-ranking HR@10."""
    if metric.startswith("full_"):
        return "full-ranking " + label(metric[5:], k)
    name, _, at = metric.partition("@")
    return f"{ {'hr': 'HR', 'ndcg': 'NDCG', 'recall': 'Recall'}.get(name, name)}@{at or k}"


def figures(metrics: dict, k: int, prefix: str = "") -> str:
    return "  ".join(f"{prefix}{label(m, k)} {v:.4f}" for m, v in metrics.items()
                     if isinstance(v, float) and "eval_" not in m)


class Report:
    def __init__(self, args, runtime: Runtime):
        self.args, self.runtime = args, runtime
        self.task = None  # the run's task, set once it is built (it reports through say())
        self.history: list[dict] = []
        self.best: dict = {"best_epoch": None, "time_to_best": None, "selected_on": None}
        self.elapsed = 0.0
        self.baselines: dict = {}
        self.select_on: str | None = None
        self.validation = "the data's validation mapping"  # or how it was carved from train (data/carve.py)
        self.writer = None

    def say(self, message: str) -> None:
        if self.runtime.is_main:  # timestamped: readable in CI logs and nohup runs too
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    @property
    def prefix(self) -> str:
        """What the selection split's figures are called in an epoch record."""
        return "valid_" if self.select_on == "validation" else ""

    @property
    def key(self) -> str:
        return self.prefix + self.task.selection_metric

    # ---- checkpointed state ------------------------------------------------------------
    def state(self) -> dict:
        return {"history": self.history, "best": self.best, "elapsed": self.elapsed}

    def restore(self, state: dict) -> None:
        self.history, self.best, self.elapsed = state["history"], state["best"], state["elapsed"]
        if "chosen_on" in self.best:  # a Mult-VAE checkpoint written before the families shared this report:
            self.best["selected_on"] = self.best.pop("chosen_on")  # chosen_on, valid_ndcg@100 / test_ndcg@100
            for key in [k for k in self.best if "_ndcg@" in k]:
                self.best["best_" + key.split("@")[0].removeprefix("test_")] = self.best.pop(key)

    # ---- events ------------------------------------------------------------------------
    def baseline(self, split: str, metrics: dict) -> None:
        where = "valid_" if split == "validation" else ""
        self.baselines.update({f"toppop_{where}{m}": v for m, v in metrics.items()})
        self.say(f"TopPop baseline on {split}: {figures(metrics, self.args.topk)}")

    def start(self, trainer) -> None:
        params = sum(p.numel() for p in trainer.model.parameters())
        self.say(f"training {self.task.describe(trainer.model)} ({params / 1e6:.1f}M parameters) on "
                 f"{self.runtime.describe()}, {self.args.batch_size:,} {self.task.unit} per step, "
                 f"from epoch {trainer.start_epoch}")
        if self.select_on:
            self.say(f"the best epoch is the one with the best {self.select_on} "
                     f"{label(self.task.selection_metric, self.args.topk)}")
        if self.args.tensorboard and self.runtime.is_main:
            from torch.utils.tensorboard import SummaryWriter

            check_writable_folder(self.args.tensorboard, "--tensorboard")
            self.writer = SummaryWriter(str(self.args.tensorboard))

    def _best_of(self, record: dict, selected_on) -> dict:
        """The summary's best-so-far entry for an epoch record (or the starting weights' figures)."""
        return {"best_epoch": record["epoch"], "time_to_best": self.elapsed, "selected_on": selected_on,
                **{f"best_{m}": v for m, v in record.items()
                   if m.startswith(self.prefix) and is_metric(m.removeprefix(self.prefix))}}

    def add_start(self, found: dict) -> None:
        """The validation figures of the weights training starts from: the best so far, as epoch START_EPOCH."""
        self.elapsed += found.get("eval_seconds", 0.0)
        self.best = self._best_of({"epoch": START_EPOCH, **found}, self.select_on)
        shown = {m: found[self.prefix + m] for m in self.task.shown_metrics if self.prefix + m in found}
        self.say(f"starting weights: {figures(shown, self.args.topk, 'valid ')} (a candidate for the chosen model: "
                 "an epoch is chosen only if it beats them)")

    def add(self, record: dict) -> bool:
        """Record an epoch; True when it is the best so far (or when nothing is evaluated)."""
        self.elapsed += record["train_seconds"] + record.get("eval_seconds", 0.0)
        record = {**record, "elapsed_seconds": self.elapsed}
        self.history.append(record)
        key, best = self.key, self.best.get("best_" + self.key)
        improved = key not in record or best is None or record[key] > best
        if improved:
            self.best = self._best_of(record, self.select_on if key in record else None)
        parts = "".join(f", {name} {record[name]:.3f}" for name in ("nll", "kl", "beta") if name in record)
        shown = {m: record[self.prefix + m] for m in self.task.shown_metrics if self.prefix + m in record}
        where = "valid " if self.select_on else ""
        self.say(f"epoch {record['epoch']:>3}  loss {record['loss']:.4f}{' (' + parts[2:] + ')' if parts else ''}"
                 f"  {figures(shown, self.args.topk, where)}  train {_rate(record['train_throughput'])} "
                 f"{self.task.unit}/s  {record['train_seconds']:.1f}s" + ("  *" if improved and key in record else ""))
        if self.runtime.is_main:
            self._log(record)
        return improved

    def _log(self, record: dict) -> None:
        if self.args.log_path:
            try:
                self.args.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.args.log_path, "a") as log:
                    log.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise UserError(f"cannot write --log_path {self.args.log_path}: {exc.strerror}")
        if self.writer:
            for name, value in record.items():
                if name != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, record["epoch"])
            self.writer.flush()

    def final(self, metrics: dict) -> None:
        """Test figures of the chosen model: `best_<m>`, and the other protocols' `full_<m>` as they are."""
        self.best.update({(m if m.startswith("full_") else f"best_{m}"): v for m, v in metrics.items()
                          if "eval_" not in m})
        when = self.best.get("time_to_best")
        after = f", chosen on validation, reached after {when:.0f}s of training and evaluation" if when else ""
        which = "the starting weights" if self.best["best_epoch"] == START_EPOCH else \
            f"epoch {self.best['best_epoch']}'s model"
        self.say(f"test figures of {which}{after}: {figures(metrics, self.args.topk)}")

    def warn_if_few(self, count: int) -> None:
        """Figures over fewer than FEW_SERIES series (or users) move by several points between seeds."""
        self.best["test_series"] = count
        if count < FEW_SERIES:
            what = "held-out users" if self.task.needs_history else "series"
            self.say(f"note: the test figures average over only {count:,} {what} (under {FEW_SERIES}): too few to "
                     f"tell models apart; a hit rate of 0.5 is ±{0.5 / count ** 0.5:.2f}")

    def summary(self) -> dict:
        runs = self.history
        out = {
            **self.best,
            "model": self.args.model,
            "epochs": len(runs),
            "final_loss": runs[-1]["loss"] if runs else None,
            "train_throughput": _mean(r["train_throughput"] for r in runs),
            "eval_throughput": _mean(r["eval_throughput"] for r in runs if "eval_throughput" in r),
            **self.baselines,
            "validation": self.validation if self.select_on else None,
            "k": self.args.topk,
        }
        if self.runtime.is_main and self.args.checkpoint_dir:
            out["checkpoint_dir"] = str(self.args.checkpoint_dir)
        if self.runtime.is_main and self.args.log_path and runs:
            from .plots import plot_history

            out["plot"] = str(plot_history(runs, self.args.log_path.with_suffix(".png"), self, out))
        if self.writer:
            self.writer.close()
        return out


def is_metric(name: str) -> bool:
    return name.split("@")[0] in ("hr", "ndcg", "recall")


def _rate(value: float) -> str:
    return f"{value / 1e3:,.0f}k" if value >= 1e4 else f"{value:,.0f}"


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None

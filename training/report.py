"""What a training run shows and writes, for every family: a sink of the loop's records. Timestamped lines on
stderr (rank 0), one JSON line per epoch in --log_path, TensorBoard scalars, the PNG plot beside the log and
the summary dict. It chooses nothing: the loop (`train.py`, `selection.py`) does, and hands it the choice.

The summary's keys are the same for every family: `best_<metric>` for the chosen model's test figures
(`best_hr`, `best_ndcg`, `best_recall@R`), `best_valid_<metric>` for its validation figures, `full_<metric>`
for the other protocol where a family has one, `toppop_...` for the popularity baseline.
"""
from __future__ import annotations

import json

from contract.atomic import check_writable_folder
from contract.console import say
from contract.errors import UserError

from .labels import figures, label
from .plots import plot_history
from .runtime import Runtime
from .selection import START_EPOCH

FEW_SERIES = 100  # test series (or held-out users) below which the summary warns that the figures are noise


class Report:
    def __init__(self, settings, runtime: Runtime, task):
        """`task`: the run's task (its unit, metrics and loss parts name what is shown; it may choose its metrics
        from the data, e.g. Recall@K on a user's own split)."""
        self.settings, self.runtime, self.task = settings, runtime, task
        self.history: list[dict] = []
        self.baselines: dict = {}
        self.validation = "the data's validation mapping"  # or how it was carved from train (data/carve.py)
        self.writer = None

    def say(self, message: str) -> None:
        if self.runtime.is_main:
            say(message)

    # ---- events ------------------------------------------------------------------------
    def baseline(self, split: str, metrics: dict) -> None:
        where = "valid_" if split == "validation" else ""
        self.baselines.update({f"toppop_{where}{m}": v for m, v in metrics.items()})
        self.say(f"TopPop baseline on {split}: {figures(metrics, self.settings.topk)}")

    def start(self, described: str, parameters: int, start_epoch: int, select_on: str | None) -> None:
        s = self.settings
        self.say(f"training {described} ({parameters / 1e6:.1f}M parameters) on {self.runtime.describe()}, "
                 f"{s.batch_size:,} {self.task.unit} per step, from epoch {start_epoch}")
        if select_on:
            self.say(f"the best epoch is the one with the best {select_on} {label(self.task.selection_metric, s.topk)}")
        if s.tensorboard and self.runtime.is_main:
            from torch.utils.tensorboard import SummaryWriter  # TensorBoard only where it is asked for

            check_writable_folder(s.tensorboard, "--tensorboard")
            self.writer = SummaryWriter(str(s.tensorboard))

    def _shown(self, record: dict, prefix: str) -> dict:
        return {m: record[prefix + m] for m in self.task.shown_metrics if prefix + m in record}

    def starting_weights(self, found: dict, prefix: str) -> None:
        self.say(f"starting weights: {figures(self._shown(found, prefix), self.settings.topk, 'valid ')} (a candidate "
                 "for the chosen model: an epoch is chosen only if it beats them)")

    def epoch(self, record: dict, chosen: bool, prefix: str) -> None:
        """Show and log an epoch's record; `chosen`: the loop chose it as the best so far on its figures."""
        self.history.append(record)
        parts = "".join(f", {name} {record[name]:.3f}" for name in self.task.loss_parts + self.task.schedule_parts
                        if name in record)
        self.say(f"epoch {record['epoch']:>3}  loss {record['loss']:.4f}{' (' + parts[2:] + ')' if parts else ''}"
                 f"  {figures(self._shown(record, prefix), self.settings.topk, 'valid ' if prefix else '')}  "
                 f"train {_rate(record['train_throughput'])} {self.task.unit}/s  {record['train_seconds']:.1f}s"
                 + ("  *" if chosen else ""))
        if self.runtime.is_main:
            self._log(record)

    def _log(self, record: dict) -> None:
        log_path = self.settings.log_path
        if log_path:
            try:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(log_path, "a") as log:
                    log.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise UserError(f"cannot write --log_path {log_path}: {exc.strerror}")
        if self.writer:
            for name, value in record.items():
                if name != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, record["epoch"])
            self.writer.flush()

    def final(self, metrics: dict, best: dict) -> None:
        """Show the chosen model's test figures (`best` is the loop's choice)."""
        when = best.get("time_to_best")
        after = f", chosen on validation, reached after {when:.0f}s of training and evaluation" if when else ""
        which = "the starting weights" if best["best_epoch"] == START_EPOCH else f"epoch {best['best_epoch']}'s model"
        self.say(f"test figures of {which}{after}: {figures(metrics, self.settings.topk)}")

    def warn_if_few(self, count: int) -> None:
        """Figures over fewer than FEW_SERIES series (or users) move by several points between seeds."""
        if count < FEW_SERIES:
            what = "held-out users" if self.task.needs_history else "series"
            self.say(f"note: the test figures average over only {count:,} {what} (under {FEW_SERIES}): too few to "
                     f"tell models apart; a hit rate of 0.5 is ±{0.5 / count ** 0.5:.2f}")

    def summary(self, best: dict, chosen: dict, prefix: str, select_on: str | None) -> dict:
        runs, s = self.history, self.settings
        out = {
            **best,
            "model": s.model,
            "epochs": len(runs),
            "final_loss": runs[-1]["loss"] if runs else None,
            "train_throughput": _mean(r["train_throughput"] for r in runs),
            "eval_throughput": _mean(r["eval_throughput"] for r in runs if "eval_throughput" in r),
            **self.baselines,
            "validation": self.validation if select_on else None,
            "k": s.topk,
            **chosen,
        }
        if self.runtime.is_main and s.checkpoint_dir:
            out["checkpoint_dir"] = str(s.checkpoint_dir)
        if self.runtime.is_main and s.log_path and runs:
            out["plot"] = str(plot_history(runs, s.log_path.with_suffix(".png"), out, self.task.shown_metrics,
                                           self.task.loss_parts, s.topk, prefix, select_on))
        if self.writer:
            self.writer.close()
        return out


def _rate(value: float) -> str:
    return f"{value / 1e3:,.0f}k" if value >= 1e4 else f"{value:,.0f}"


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None

"""What a run tells people: a line per epoch, JSON lines, TensorBoard, a plot, a final summary."""
from __future__ import annotations

import json
import sys
import time

from contract.errors import UserError

from .runtime import Runtime


class EpochReport:
    def __init__(self, args, runtime: Runtime):
        self.args, self.runtime = args, runtime
        self.history: list[dict] = []
        self.best = {"best_hr": None, "best_ndcg": None, "best_valid_hr": None, "best_valid_ndcg": None,
                     "best_epoch": None, "time_to_best": None, "selected_on": None}
        self.elapsed = 0.0
        self.baseline_metrics: dict = {}
        self.writer = None

    def say(self, message: str) -> None:
        if self.runtime.is_main:  # timestamped: readable in CI logs and nohup runs too
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    # ---- checkpointed state ------------------------------------------------------------
    def state(self) -> dict:
        return {"history": self.history, "best": self.best, "elapsed": self.elapsed}

    def restore(self, state: dict) -> None:
        self.history, self.best, self.elapsed = state["history"], state["best"], state["elapsed"]

    # ---- events ------------------------------------------------------------------------
    def baseline(self, metrics: dict) -> None:
        """TopPop under the sampled (toppop_hr) or the full-ranking protocol (toppop_full_hr)."""
        self.baseline_metrics.update(metrics)
        protocol = "full ranking" if "toppop_full_hr" in metrics else "sampled"
        hr, ndcg = (v for key, v in metrics.items() if key.endswith(("_hr", "_ndcg")))
        self.say(f"TopPop baseline ({protocol}): HR@{self.args.topk} {hr:.4f}  NDCG@{self.args.topk} {ndcg:.4f}")

    def final(self, metrics: dict) -> None:
        """Full-ranking figures of the chosen model, added to the summary."""
        self.best.update({key: value for key, value in metrics.items() if key != "full_eval_seconds"})
        self.say(f"full ranking of epoch {self.best['best_epoch']}'s model: HR@{self.args.topk} {metrics['full_hr']:.4f}"
                 f"  NDCG@{self.args.topk} {metrics['full_ndcg']:.4f}  Recall@{self.args.topk} "
                 f"{metrics['full_recall']:.4f}  ({metrics['full_eval_seconds']:.1f}s)")

    def start(self, trainer) -> None:
        params = sum(p.numel() for p in trainer.model.parameters())
        sizes = trainer.spec.table_sizes
        self.say(
            f"training {trainer.arch['variant']} ({params / 1e6:.1f}M parameters) for users/items "
            f"{sizes['users']:,}/{sizes['items']:,} on {self.runtime.describe()}, from epoch {trainer.start_epoch}"
        )
        if self.args.tensorboard and self.runtime.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.args.tensorboard))

    @staticmethod
    def selection_key(record: dict) -> str:
        """The best epoch is chosen on validation HR; on test HR only where there is no validation."""
        return "valid_hr" if "valid_hr" in record else "hr"

    def add(self, record: dict) -> bool:
        """Record an epoch; True when it is the best so far (or when nothing is evaluated)."""
        self.elapsed += record["train_seconds"] + record.get("eval_seconds", 0.0)
        record = {**record, "elapsed_seconds": self.elapsed}
        self.history.append(record)
        key = self.selection_key(record)
        best = self.best["best_valid_hr" if key == "valid_hr" else "best_hr"]
        improved = key not in record or best is None or record[key] > best
        if improved:
            self.best = {"best_hr": record.get("hr"), "best_ndcg": record.get("ndcg"),
                         "best_valid_hr": record.get("valid_hr"), "best_valid_ndcg": record.get("valid_ndcg"),
                         "best_epoch": record["epoch"], "time_to_best": self.elapsed,
                         "selected_on": {"valid_hr": "validation", "hr": "test"}[key] if key in record else None}
        k = self.args.topk
        metrics = (f"  valid HR@{k} {record['valid_hr']:.4f}" if "valid_hr" in record else "") + \
            (f"  HR@{k} {record['hr']:.4f}  NDCG@{k} {record['ndcg']:.4f}" if "hr" in record else "")
        self.say(f"epoch {record['epoch']:>3}  loss {record['loss']:.4f}{metrics}  "
                 f"train {record['train_throughput'] / 1e3:,.0f}k samples/s  {record['train_seconds']:.1f}s"
                 + ("  *" if improved and key in record else ""))
        if self.runtime.is_main:
            if self.args.log_path:
                try:
                    self.args.log_path.parent.mkdir(parents=True, exist_ok=True)
                    with open(self.args.log_path, "a") as log:
                        log.write(json.dumps(record) + "\n")
                except OSError as exc:
                    raise UserError(f"cannot write --log_path {self.args.log_path}: {exc.strerror}")
            if self.writer:
                for name in ("loss", "valid_hr", "valid_ndcg", "hr", "ndcg", "train_throughput"):
                    if name in record:
                        self.writer.add_scalar(name, record[name], record["epoch"])
                self.writer.flush()
        return improved

    def summary(self) -> dict:
        runs = self.history
        out = {
            **self.best,
            "epochs": len(runs),
            "final_loss": runs[-1]["loss"] if runs else None,
            "train_throughput": _mean(r["train_throughput"] for r in runs),
            "eval_throughput": _mean(r["eval_throughput"] for r in runs if "eval_throughput" in r),
            **self.baseline_metrics,
            "k": self.args.topk,
        }
        if self.runtime.is_main and self.args.log_path and runs:
            from .plots import plot_history

            out["plot"] = str(plot_history(runs, self.args.log_path.with_suffix(".png"), self.args.topk))
        if self.writer:
            self.writer.close()
        return out


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None

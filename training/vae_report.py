"""What a Mult-VAE run tells people: a timestamped line per epoch, JSON lines and a plot, the final summary."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from contract.errors import UserError

from .runtime import Runtime


class VaeReport:
    def __init__(self, args, runtime: Runtime):
        self.args, self.runtime = args, runtime
        self.k = args.top_results
        self.history: list[dict] = []
        self.best = {"best_epoch": None, "time_to_best": None}
        self.elapsed = 0.0
        self.chosen_on = "validation"
        self.extra: dict = {}  # popularity baseline, test figures of the chosen model

    @property
    def key(self) -> str:
        """The record entry that picks the best epoch."""
        return f"{'valid' if self.chosen_on == 'validation' else 'test'}_ndcg@{self.k}"

    def say(self, message: str) -> None:
        if self.runtime.is_main:
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    # ---- checkpointed state ------------------------------------------------------------
    def state(self) -> dict:
        return {"history": self.history, "best": self.best, "elapsed": self.elapsed}

    def restore(self, state: dict) -> None:
        self.history, self.best, self.elapsed = state["history"], state["best"], state["elapsed"]

    # ---- events ------------------------------------------------------------------------
    def baseline(self, metrics: dict) -> None:
        self.extra.update(metrics)
        self.say(f"popularity baseline on the test users: NDCG@{self.k} {metrics[f'pop_ndcg@{self.k}']:.4f}  "
                 f"Recall@20 {metrics['pop_recall@20']:.4f}  Recall@50 {metrics['pop_recall@50']:.4f}")

    def start(self, trainer) -> None:
        params = sum(p.numel() for p in trainer.model.parameters())
        dims = "-".join(map(str, [trainer.spec.item_cardinality, *trainer.arch["dims"],
                                  *reversed(trainer.arch["dims"][:-1]), trainer.spec.item_cardinality]))
        self.say(f"training Mult-VAE {dims} ({params / 1e6:.1f}M parameters) on {self.runtime.describe()}, "
                 f"{trainer.users_per_rank * self.runtime.world} users per step, from epoch {trainer.start_epoch}")

    def add(self, record: dict) -> bool:
        """Record an epoch; True when it is the best so far (always, without held-out users)."""
        self.elapsed += record["train_seconds"] + record.get("eval_seconds", 0.0)
        record = {**record, "elapsed_seconds": self.elapsed}
        self.history.append(record)
        best_value = self.best.get(self.key)
        improved = self.key not in record or best_value is None or record[self.key] > best_value
        if improved:
            self.best = {"best_epoch": record["epoch"], "time_to_best": self.elapsed}
            if self.key in record:
                self.best[self.key] = record[self.key]
        prefix = self.key.split("_")[0]
        metrics = "".join(f"  {name} {record[f'{prefix}_{name}']:.4f}" for name in
                          (f"ndcg@{self.k}", "recall@20", "recall@50") if f"{prefix}_{name}" in record)
        self.say(f"epoch {record['epoch']:>3}  loss {record['loss']:.2f} (nll {record['nll']:.2f}, kl {record['kl']:.2f}, "
                 f"beta {record['beta']:.3f}){metrics}  train {record['train_throughput']:,.0f} users/s  "
                 f"{record['train_seconds']:.1f}s" + ("  *" if improved and self.key in record else ""))
        if self.runtime.is_main and self.args.log_path:
            try:
                self.args.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.args.log_path, "a") as log:
                    log.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise UserError(f"cannot write --log_path {self.args.log_path}: {exc.strerror}")
        return improved

    def final(self, metrics: dict) -> None:
        self.extra.update(metrics)
        self.say(f"test users, epoch {self.best['best_epoch']}'s model: NDCG@{self.k} {metrics[f'ndcg@{self.k}']:.4f}  "
                 f"Recall@20 {metrics['recall@20']:.4f}  Recall@50 {metrics['recall@50']:.4f}")

    def summary(self) -> dict:
        runs = self.history
        out = {
            **self.extra, **self.best,
            "chosen_on": self.chosen_on,
            "epochs": len(runs),
            "final_loss": runs[-1]["loss"] if runs else None,
            "train_throughput": _mean(r["train_throughput"] for r in runs),
            "eval_throughput": _mean(r["eval_throughput"] for r in runs if "eval_throughput" in r),
        }
        if self.runtime.is_main and self.args.log_path and runs:
            out["plot"] = str(plot_history(runs, self.args.log_path.with_suffix(".png"), self.key))
        return out


def plot_history(history: list[dict], path: Path, key: str) -> Path:
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["loss"] for r in history], marker="o", label="loss (-ELBO)")
    left.plot(epochs, [r["nll"] for r in history], marker=".", label="multinomial NLL")
    left.set(title="train loss", xlabel="epoch")
    left.legend()
    if any(key in r for r in history):
        right.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
    right.set(title="held-out metric", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None

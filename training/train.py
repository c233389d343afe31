"""python -m training: train NeuMF on a FeatureSpec dataset (or evaluate a checkpoint with --mode test).

`Trainer.fit` reads top to bottom: baseline, then per epoch train, evaluate, report, checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from contract.errors import UserError, print_error
from contract.feature_spec import FeatureSpec

from . import checkpoint
from .args import parse_args
from .data.pairs import TrainStream
from .data.popularity import checked_item_counts
from .data.test_series import load_test_series
from .defaults import batch_size_for
from .evaluate import check_topk, evaluate, evaluate_checkpoint, evaluate_toppop
from .full_ranking import evaluate_full, evaluate_toppop_full, load_ranking_task
from .models import architecture, build_model
from .models.neumf import from_pretrained
from .objective import Objective
from .optim import adam
from .report import EpochReport
from .runtime import Runtime, shutdown, start_runtime
from .seeds import epoch_seed


def accumulate_gradients(objective: Objective, batch, micro_batches: int, runtime: Runtime, scaler, no_sync=None):
    """Forward and backward over `micro_batches` slices of one batch; returns the batch's mean loss.

    A batch is users (P,) with items and labels (T, P) (a positive and its negatives per column);
    slices are whole columns. Each slice's mean loss is weighted by its share of the batch, so the
    accumulated gradient is the gradient of the whole batch's mean loss. `no_sync` (DDP) skips the
    all-reduce of all slices but the last.
    """
    users, items, labels = batch
    total = torch.zeros((), dtype=torch.float64, device=labels.device)
    slices = list(zip(users.chunk(micro_batches), items.chunk(micro_batches, dim=-1),
                      labels.chunk(micro_batches, dim=-1)))
    for j, (u, i, y) in enumerate(slices):
        last = j == len(slices) - 1
        with (contextlib.nullcontext() if last or no_sync is None else no_sync()), runtime.autocast():
            loss = objective(u, i, y) * (y.numel() / labels.numel())
        scaler.scale(loss).backward()
        total += loss.detach()
    return total


def refuse_to_replace_an_earlier_run(args, runtime: Runtime) -> None:
    """A new run never silently replaces the checkpoints or the log of an earlier one."""
    earlier = [p for p in (*(args.checkpoint_dir / f for f in (checkpoint.BEST, checkpoint.LAST)
                             if args.checkpoint_dir), *([args.log_path] if args.log_path else [])) if p.exists()]
    if not earlier or args.resume:
        return
    if not args.overwrite:
        raise UserError(f"{earlier[0]} is from an earlier run: pass --resume to continue it or --overwrite to replace it")
    if runtime.is_main and args.log_path:
        args.log_path.unlink(missing_ok=True)  # its epochs would mix with this run's


class Trainer:
    """Owns the model, optimizer and data for one training run."""

    def __init__(self, args, runtime: Runtime):
        self.args, self.runtime = args, runtime
        refuse_to_replace_an_earlier_run(args, runtime)
        self.report = EpochReport(args, runtime)
        self.spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("train",))
        has_test = "test" in self.spec.source_spec and not args.no_eval
        has_validation = "validation" in self.spec.source_spec and has_test
        if "test" not in self.spec.source_spec:
            self.report.say("note: the FeatureSpec has no test mapping; training without evaluation")
        elif has_test and not has_validation:
            self.report.say("note: the FeatureSpec has no validation mapping: the best epoch is chosen on the test "
                            "series, which flatters the reported figures")
        if has_test:
            check_topk(args.topk, self.spec)
        # --init_from continues someone's model: its architecture wins over the flags; so do pretrained parts.
        self.init_payload = checkpoint.load(args.init_from) if args.init_from else None
        self.pretrained = [checkpoint.load(p) for p in (args.pretrained_gmf, args.pretrained_mlp)] \
            if args.pretrained_gmf else None
        self.arch = self.init_payload["meta"]["architecture"] if self.init_payload else architecture(args)
        if self.pretrained:
            gmf, mlp = (payload["meta"]["architecture"] for payload in self.pretrained)
            if (gmf["variant"], mlp["variant"]) != ("gmf", "mlp"):
                raise UserError(f"--pretrained_gmf/--pretrained_mlp are a {gmf['variant']} and an {mlp['variant']} "
                                "checkpoint; expected a gmf and an mlp")
            self.arch = {"variant": "neumf", "factors": gmf["factors"], "layers": mlp["layers"]}
        self.popularity = torch.from_numpy(checked_item_counts(self.spec)).to(runtime.device)
        # -b counts samples (positives and their negatives) over all ranks, as in DLE.
        chosen = args.batch_size is None
        if chosen:
            positives = int(self.popularity.sum())
            args.batch_size = batch_size_for(positives, args.negative_samples)
        positives_per_rank = args.batch_size // (runtime.world * (1 + args.negative_samples))
        if positives_per_rank < 1:
            raise UserError(f"-b {args.batch_size} is too small for {runtime.world} ranks x "
                            f"{1 + args.negative_samples} samples per positive")
        used = positives_per_rank * runtime.world * (1 + args.negative_samples)
        if chosen:
            args.batch_size = used
            self.report.say(f"-b {used} chosen for {positives:,} train positives: about "
                            f"{positives * (1 + args.negative_samples) / used:.0f} steps per epoch (pass -b to choose)")
        elif used != args.batch_size:
            self.report.say(f"note: -b {args.batch_size} is rounded down to whole positives: {used} samples per step "
                            f"({positives_per_rank} positives x {1 + args.negative_samples} on each of {runtime.world} rank(s))")
        torch.manual_seed(args.seed)
        self.model = build_model(self.arch, self.spec.table_sizes, args.dropout).to(runtime.device)
        self.optimizer = adam(self.model.parameters(), args.learning_rate, args.beta1, args.beta2, args.eps)
        self.scaler = runtime.grad_scaler()
        self.start_epoch = 0
        self._restore()
        self.ddp = DistributedDataParallel(self.model) if runtime.world > 1 else None
        self.test = load_test_series(self.spec, runtime) if has_test else None
        self.validation = load_test_series(self.spec, runtime, "validation") if has_validation else None
        # sampled test figures each epoch, unless only full ranking is asked for and validation picks the epoch
        self.sampled_test = has_test and (args.eval != "full" or not has_validation)
        self.ranking = load_ranking_task(self.spec, runtime) if has_test and args.eval != "sampled" else None
        self.best_state = None
        if self.ranking is not None and args.resume and (args.checkpoint_dir / checkpoint.BEST).exists():
            self.best_state = checkpoint.load(args.checkpoint_dir / checkpoint.BEST)["model"]
        self.stream = TrainStream(self.spec, positives_per_rank, args.negative_samples, runtime, args.seed)
        self.objective = Objective(self.ddp or self.model, self.model, args.l2)

    def _restore(self) -> None:
        args = self.args
        if args.resume:
            path = args.checkpoint_dir / checkpoint.LAST
            payload = checkpoint.load(path)
            checkpoint.check_fits(payload, path, self.spec.table_sizes, self.arch)
            self.model.load_state_dict(payload["model"])
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
            except ValueError as exc:  # e.g. written before NeuMF kept one embedding table per side
                raise UserError(f"{path}: its optimizer state does not fit this model's parameters ({exc}); "
                                "start from its weights with --init_from instead of --resume")
            self.scaler.load_state_dict(payload["scaler"])
            self.start_epoch = payload["meta"]["epoch"] + 1
            self.report.restore(payload["meta"]["report"])
        elif self.init_payload:
            checkpoint.check_fits(self.init_payload, args.init_from, self.spec.table_sizes)
            self.model.load_state_dict(self.init_payload["model"])
        elif self.pretrained:
            for payload, where in zip(self.pretrained, (args.pretrained_gmf, args.pretrained_mlp)):
                checkpoint.check_fits(payload, where, self.spec.table_sizes)
            gmf, mlp = (payload["model"] for payload in self.pretrained)
            self.model.load_state_dict(from_pretrained(gmf, mlp, args.alpha))

    def meta(self, epoch: int) -> dict:
        return {"epoch": epoch, "cardinalities": self.spec.table_sizes, "architecture": self.arch,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                "report": self.report.state()}

    def train_epoch(self, epoch: int) -> dict:
        torch.manual_seed(epoch_seed(self.args.seed, epoch, self.runtime.rank))  # dropout
        self.model.train()
        no_sync = self.ddp.no_sync if self.ddp else None
        total_loss = torch.zeros((), dtype=torch.float64, device=self.runtime.device)
        steps, samples, begin = 0, 0, time.perf_counter()
        bar = tqdm(self.stream.epoch(epoch, self.args.steps_per_epoch), desc=f"epoch {epoch}", unit="step",
                   leave=False, file=sys.stderr, disable=not (self.runtime.is_main and sys.stderr.isatty()))
        for batch in bar:
            total_loss += accumulate_gradients(self.objective, batch, self.args.grads_accumulated, self.runtime,
                                               self.scaler, no_sync)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            steps += 1
            samples += batch[2].numel()
        seconds = time.perf_counter() - begin
        loss_sum, steps_all, samples_all = self.runtime.sum(total_loss.item(), steps, samples)
        return {"loss": loss_sum / max(steps_all, 1), "train_seconds": seconds,
                "train_throughput": samples_all / max(seconds, 1e-9), "steps": steps}

    def save(self, epoch: int, improved: bool) -> None:
        state = {"model": self.model.state_dict(), "meta": self.meta(epoch)}
        if improved:
            checkpoint.save(self.args.checkpoint_dir / checkpoint.BEST, state)
        checkpoint.save(self.args.checkpoint_dir / checkpoint.LAST, {
            **state, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()})

    def fit(self) -> dict:
        args, runtime = self.args, self.runtime
        if self.test is not None:
            self.report.baseline(evaluate_toppop(self.popularity, self.test, args.topk, runtime))
        if self.ranking is not None:
            self.report.baseline(evaluate_toppop_full(self.popularity, self.ranking, args.topk, runtime))
        self.report.start(self)
        for epoch in range(self.start_epoch, args.epochs):
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            if self.validation is not None:
                found = evaluate(self.model, self.validation, args.topk, args.valid_batch_size, runtime)
                record.update({"valid_hr": found["hr"], "valid_ndcg": found["ndcg"]})
            if self.sampled_test:
                record.update(evaluate(self.model, self.test, args.topk, args.valid_batch_size, runtime))
            improved = self.report.add(record)
            if improved and self.ranking is not None:  # the chosen model is ranked fully at the end
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if runtime.is_main and args.checkpoint_dir:
                self.save(epoch, improved)
            chosen_by = self.report.selection_key(record)
            if record.get(chosen_by, 0.0) >= args.threshold:
                self.report.say(f"{chosen_by} {record[chosen_by]:.4f} reached --threshold {args.threshold}: stopping")
                break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.report.final(evaluate_full(self.model, self.ranking, args.topk, args.valid_batch_size, runtime))
        runtime.barrier()
        self.stream.close()
        return self.report.summary()


def pretrain(args, runtime: Runtime) -> dict:
    """--pretrain: GMF, then MLP, then NeuMF initialised from both (the NCF paper's recipe)."""
    def stage(variant: str, **extra) -> dict:
        staged = argparse.Namespace(**{**vars(args), "model": variant, "pretrain": False,
                                       "checkpoint_dir": args.checkpoint_dir / variant, **extra})
        if args.log_path:
            staged.log_path = args.log_path.with_name(f"{args.log_path.stem}.{variant}{args.log_path.suffix}")
        if args.tensorboard:
            staged.tensorboard = args.tensorboard / variant
        trainer = Trainer(staged, runtime)
        trainer.report.say(f"--pretrain: training {variant} into {staged.checkpoint_dir}")
        return trainer.fit()

    stages = {variant: stage(variant) for variant in ("gmf", "mlp")}
    final = stage("neumf", pretrained_gmf=args.checkpoint_dir / "gmf" / checkpoint.BEST,
                  pretrained_mlp=args.checkpoint_dir / "mlp" / checkpoint.BEST)
    keep = ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "full_hr", "full_ndcg")
    return {**final, "pretrain": {v: {k: s.get(k) for k in keep} for v, s in stages.items()}}


def run(argv=None) -> dict:
    """Train or evaluate as the command line would, and return the summary (for notebooks too)."""
    args = parse_args(argv)
    runtime = start_runtime(args.amp)
    try:
        if args.mode == "test":
            return evaluate_checkpoint(args, runtime)
        return pretrain(args, runtime) if args.pretrain else Trainer(args, runtime).fit()
    finally:
        shutdown(runtime)


def main(argv=None) -> int:
    try:
        summary = run(argv)
    except UserError as exc:
        return print_error(exc)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

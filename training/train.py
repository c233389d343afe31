"""python -m training: the one training loop, for every model family (see `tasks/`).

`Trainer.fit` reads top to bottom: the popularity baseline, then per epoch train, evaluate the validation
split that picks the best epoch (carved from train where the data has none: never test), report,
checkpoint; at the end the chosen model's test figures. The family (its task) brings its flags, model,
stream, loss and evaluation; the loop brings resume, DDP, precision, gradient accumulation, checkpoints,
selection and the re-run rules, once.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from contract.errors import UserError, interrupted, print_error
from contract.feature_spec import FeatureSpec
from contract.lock import exclusive

from . import checkpoint, optim
from .args import for_family, parse_args
from .data.carve import needs_carving
from .growth import grow_model
from .models import build_model
from .report import START_EPOCH, Report
from .runtime import Runtime, shutdown, start_runtime
from .seeds import epoch_seed
from .tasks import check_layout, model_for, task_for
from .tasks.base import Task


def accumulate_gradients(task: Task, net, model, batch, micro_batches: int, step: int, runtime: Runtime, scaler,
                         no_sync=None) -> tuple[torch.Tensor, dict]:
    """Forward and backward over `micro_batches` slices of one batch; the batch's mean loss and parts.

    Each slice's loss is weighted by its share of the batch, so the accumulated gradient is the gradient
    of the whole batch's mean loss. `no_sync` (DDP) skips the all-reduce of all slices but the last.
    """
    total = torch.zeros((), dtype=torch.float64, device=runtime.device)
    parts: dict = {}
    slices = task.micro_batches(batch, micro_batches)
    for j, (micro, share) in enumerate(slices):
        last = j == len(slices) - 1
        with (contextlib.nullcontext() if last or no_sync is None else no_sync()), runtime.autocast():
            loss, found = task.loss(net, model, micro, step)
            loss = loss * share
        scaler.scale(loss).backward()
        total += loss.detach()
        for name, value in found.items():
            parts[name] = parts.get(name, 0.0) + value.double() * share
    return total, parts


def nothing_to_resume(folder: Path) -> str:
    """What to do when `folder` has no last.pth: advice that works, never "--resume" again."""
    best = folder / checkpoint.BEST
    return (f"{folder} holds no {checkpoint.LAST} to resume (the earlier run stopped before writing one): pass "
            "--overwrite to start again" + (f", or --overwrite --init_from {best} to start from its best model"
                                            if best.exists() else ""))


def refuse_to_replace_an_earlier_run(args, runtime: Runtime) -> None:
    """A new run never silently replaces the checkpoints or the log of an earlier one."""
    if args.resume and not (args.checkpoint_dir / checkpoint.LAST).exists():
        raise UserError(nothing_to_resume(args.checkpoint_dir))
    earlier = [p for p in (*(args.checkpoint_dir / f for f in (checkpoint.BEST, checkpoint.LAST)
                             if args.checkpoint_dir), *([args.log_path] if args.log_path else [])) if p.exists()]
    if not earlier or args.resume:
        return
    if not args.overwrite:
        if args.checkpoint_dir and not (args.checkpoint_dir / checkpoint.LAST).exists():
            raise UserError(nothing_to_resume(args.checkpoint_dir))
        raise UserError(f"{earlier[0]} is from an earlier run: pass --resume to continue it or --overwrite to replace it")
    if runtime.is_main and args.log_path:
        args.log_path.unlink(missing_ok=True)  # its epochs would mix with this run's


def lock_outputs(args, runtime: Runtime) -> contextlib.ExitStack:
    """Rank 0 (the one that writes) locks the checkpoint folder and the log for the whole run, so a second
    run into them refuses instead of interleaving its epochs and checkpoints with this one's."""
    held, refused = contextlib.ExitStack(), None
    if runtime.is_main:
        try:
            for target in (args.checkpoint_dir, args.log_path):
                if target is not None:
                    held.enter_context(exclusive(target))
        except UserError as exc:
            held.close()
            refused = exc
    if runtime.sum(float(refused is not None))[0]:  # every rank stops, not only the one that knows why
        raise refused or UserError("rank 0 could not lock this run's outputs")
    return held


class Trainer:
    """Owns the model, optimizer, data and report of one training run of any family."""

    def __init__(self, args, runtime: Runtime, task_class: type[Task], spec: FeatureSpec):
        self.args, self.runtime, self.spec = args, runtime, spec
        refuse_to_replace_an_earlier_run(args, runtime)
        self.report = Report(args, runtime)
        if args.checkpoint_dir and runtime.is_main:
            self.report.say(f"run folder: {args.checkpoint_dir}" + (f", log {args.log_path}" if args.log_path else ""))
        self.carved, self.stream = None, None
        if not args.no_eval and needs_carving(spec):  # never choose on test
            self.carved = task_class.carve_validation(spec, args.seed)
            spec = self.spec = self.carved.spec
            self.report.say(f"note: the FeatureSpec has no validation mapping: {self.carved.what}")
            self.report.validation = self.carved.what
        try:
            self._build(task_class, spec)
        except BaseException:
            self.close()
            raise

    def _build(self, task_class: type[Task], spec: FeatureSpec) -> None:
        args, runtime = self.args, self.runtime
        self.task = self.report.task = task = task_class(args, spec, runtime, self.report.say)
        self.splits = [] if args.no_eval else [s for s in ("validation", "test") if s in spec.source_spec]
        self.report.select_on = "validation" if "validation" in self.splits else None
        if not self.splits and not args.no_eval:
            self.report.say("note: the FeatureSpec has no validation or test mapping; training without evaluation")
        # --init_from continues someone's model: its architecture wins over the flags.
        self.init_payload = checkpoint.load(args.init_from) if args.init_from else None
        if self.init_payload:
            variant = self.init_payload["meta"]["architecture"]["variant"]
            if task_for(variant) is not task_class:
                check_layout(task_for(variant), variant, spec, f"--init_from {args.init_from} ({variant})")
        self.arch = self.init_payload["meta"]["architecture"] if self.init_payload else task.architecture()
        per_rank = task.batch_per_rank()
        torch.manual_seed(args.seed)
        self.model = build_model(self.arch, spec.table_sizes, args.dropout).to(runtime.device)
        self.optimizer = optim.build(args.optimizer, self.model.parameters(), args.learning_rate, args.beta1, args.beta2,
                                    args.eps)
        self.scaler = runtime.grad_scaler()
        self.start_epoch, self.step, self.best_state = 0, 0, None
        self.given_weights = False  # started from weights someone handed over (--init_from, pretrained parts)
        self._restore()
        self.ddp = DistributedDataParallel(self.model) if runtime.world > 1 else None
        self.stream = task.stream(per_rank)

    def close(self) -> None:
        """Remove what this run wrote only for itself (the stream's scratch parts, a carved validation set) and
        let go of the DDP wrapper: its reducer holds the process group, which shutdown() then destroys."""
        self.ddp = None
        if self.stream is not None:
            self.stream.close()
        if self.carved is not None:
            self.carved.close()

    def _restore(self) -> None:
        args = self.args
        if args.resume:
            path = args.checkpoint_dir / checkpoint.LAST
            payload = checkpoint.load(path)
            checkpoint.check_fits(payload, path, self.spec.table_sizes, self.arch)
            earlier = payload["meta"].get("args", {}).get("optimizer", "adam")
            if earlier != args.optimizer:
                raise UserError(f"{path} was trained with --optimizer {earlier}: --resume it with the same, or start "
                                f"from its weights with --init_from and --optimizer {args.optimizer}")
            self.model.load_state_dict(payload["model"])
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
            except ValueError as exc:  # e.g. written before NeuMF kept one embedding table per side
                raise UserError(f"{path}: its optimizer state does not fit this model's parameters ({exc}); "
                                "start from its weights with --init_from instead of --resume")
            self.scaler.load_state_dict(payload["scaler"])
            self.start_epoch, self.step = payload["meta"]["epoch"] + 1, payload["meta"].get("step", 0)
            self.report.restore(payload["meta"]["report"])
            best = args.checkpoint_dir / checkpoint.BEST
            self.best_state = checkpoint.load(best)["model"] if best.exists() else None
        elif self.init_payload:
            self.given_weights = True
            checkpoint.check_extends(self.init_payload, args.init_from, self.spec)
            if self.init_payload["meta"]["cardinalities"] == self.spec.table_sizes:
                self.model.load_state_dict(self.init_payload["model"])
            else:  # data of a grown workflow: old rows copied, new rows as a fresh model's
                added = grow_model(self.model, self.init_payload["model"], args.init_from)
                self.report.say(f"grew {args.init_from} onto this data's grown workflow: "
                                + ", ".join(f"{n:,} {role[:-1]} rows added" for role, n in added.items())
                                + " (initialised as a fresh model's); every old row copied unchanged")
        else:
            self.given_weights = self.task.initialise(self.model)

    def meta(self, epoch: int) -> dict:
        return {"epoch": epoch, "step": self.step, "cardinalities": self.spec.table_sizes,
                "workflow_id": self.spec.workflow_id, "architecture": self.arch,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                "report": self.report.state()}

    def train_epoch(self, epoch: int) -> dict:
        args, runtime, task = self.args, self.runtime, self.task
        torch.manual_seed(epoch_seed(args.seed, epoch, runtime.rank))  # dropout, latent samples
        self.model.train()
        net, no_sync = self.ddp or self.model, self.ddp.no_sync if self.ddp else None
        loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
        part_sums: dict = {}
        steps, units, begin = 0, 0, time.perf_counter()
        bar = tqdm(self.stream.epoch(epoch, args.steps_per_epoch), desc=f"epoch {epoch}", unit="step", leave=False,
                   file=sys.stderr, disable=not (runtime.is_main and sys.stderr.isatty()))
        for batch in bar:
            loss, parts = accumulate_gradients(task, net, self.model, batch, args.grads_accumulated, self.step, runtime,
                                               self.scaler, no_sync)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            loss_sum += loss
            for name, value in parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + value
            self.step += 1
            steps += 1
            units += task.batch_units(batch)
        seconds = time.perf_counter() - begin
        names = sorted(part_sums)
        loss_all, *parts_all, steps_all, units_all = runtime.sum(
            loss_sum.item(), *(float(part_sums[n]) for n in names), steps, units)
        per_step = max(steps_all, 1)
        return {"loss": loss_all / per_step, **{n: v / per_step for n, v in zip(names, parts_all)},
                **task.epoch_parts(self.step), "steps": steps, "train_seconds": seconds,
                "train_throughput": units_all / max(seconds, 1e-9)}

    def save(self, epoch: int, improved: bool) -> None:
        state = {"model": self.model.state_dict(), "meta": self.meta(epoch)}
        if improved:
            checkpoint.save(self.args.checkpoint_dir / checkpoint.BEST, state)
        checkpoint.save(self.args.checkpoint_dir / checkpoint.LAST, {
            **state, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()})

    def validation_figures(self) -> dict:
        """The model's figures on the split that chooses the model, named as an epoch record names them."""
        found = self.task.evaluate(self.model, self.report.select_on)
        return {(k if k.startswith("eval_") else self.report.prefix + k): v for k, v in found.items()}

    def evaluate_start(self) -> None:
        """Weights given to start from (pretrained parts, --init_from) are a candidate too: training can only
        return a model at least as good on validation as the one it was handed (fine-tuning a pretrained NeuMF
        lowered validation on ml-100k: bench/NOTES.md)."""
        self.report.elapsed += self.task.initialise_seconds
        self.report.add_start(self.validation_figures())
        if "test" in self.splits:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.runtime.is_main and self.args.checkpoint_dir:
            checkpoint.save(self.args.checkpoint_dir / checkpoint.BEST,
                            {"model": self.model.state_dict(), "meta": self.meta(START_EPOCH)})

    def fit(self) -> dict:
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> dict:
        args, runtime, report, task = self.args, self.runtime, self.report, self.task
        for split in self.splits:
            report.baseline(split, task.baseline(split))
        report.start(self)
        first = self.start_epoch
        if report.select_on and first == 0 and self.given_weights:
            self.evaluate_start()
            if report.best.get("best_" + report.key, 0.0) >= args.threshold:
                report.say(f"{report.key} of the starting weights reached --threshold {args.threshold}: no training")
                first = args.epochs
        for epoch in range(first, args.epochs):
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            if report.select_on:
                record.update(self.validation_figures())
            improved = report.add(record)
            if improved and "test" in self.splits:  # the chosen model is tested at the end
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if runtime.is_main and args.checkpoint_dir:
                self.save(epoch, improved)
            if record.get(report.key, 0.0) >= args.threshold:
                report.say(f"{report.key} {record[report.key]:.4f} reached --threshold {args.threshold}: stopping")
                break
        runtime.barrier()
        if "test" in self.splits and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            report.final({**task.evaluate(self.model, "test"), **task.extra_test(self.model)})
            report.warn_if_few(task.evaluated("test"))
        return report.summary()


def train(args, runtime: Runtime) -> dict:
    """One training run of the family that fits the data (or --model)."""
    spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("train",))
    task_class = for_family(args, model_for(spec, args.model))
    with lock_outputs(args, runtime):
        if getattr(args, "pretrain", False):
            from .pretrain import pretrain

            return pretrain(args, runtime, task_class, spec)
        return Trainer(args, runtime, task_class, spec).fit()


def run(argv=None) -> dict:
    """Train or evaluate as the command line would, and return the summary (for notebooks too)."""
    args = parse_args(argv)
    runtime = start_runtime(args.amp)
    try:
        if args.mode == "test":
            from .evaluate import evaluate_checkpoint

            return evaluate_checkpoint(args, runtime)
        return train(args, runtime)
    finally:
        shutdown(runtime)


def main(argv=None) -> int:
    try:
        summary = run(argv)
    except UserError as exc:
        return print_error(exc)
    except KeyboardInterrupt:
        return interrupted()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

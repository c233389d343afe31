"""python -m training: the one training loop, for every model family (see `tasks/`).

`Trainer.fit` reads top to bottom: the popularity baseline, then per epoch train, evaluate the validation
split that picks the best epoch (carved from train where the data has none: never test), choose, report,
checkpoint; at the end the chosen model's test figures. The family (its task) brings its flags, model,
stream, loss and evaluation; the loop brings resume, DDP, precision, gradient accumulation, checkpoints,
the choice of the model (`selection.py`) and the re-run rules, once. The run's settings are resolved
before it starts (`args.for_family`, then -b sized to the data here) and printed on its first lines.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from contract.console import entry_point, say
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from contract.lock import exclusive

from . import checkpoint, optim, saved
from .args import for_family, parse_args
from .data.carve import needs_carving
from .evaluate import evaluate_checkpoint
from .report import Report
from .runtime import Runtime, shutdown, start_runtime
from .seeds import epoch_seed
from .selection import START_EPOCH, Selection, with_test_figures
from .tasks import build_model, model_for
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
    """Owns the model, optimizer, data, choice and report of one training run of any family."""

    def __init__(self, settings, runtime: Runtime, task_class: type[Task], spec: FeatureSpec):
        self.runtime, self.spec = runtime, spec
        refuse_to_replace_an_earlier_run(settings, runtime)
        self.say = say if runtime.is_main else (lambda message: None)
        if settings.checkpoint_dir and runtime.is_main:
            self.say(f"run folder: {settings.checkpoint_dir}" + (f", log {settings.log_path}" if settings.log_path else ""))
        self.carved, self.stream = None, None
        if not settings.no_eval and needs_carving(spec):  # never choose on test
            self.carved = task_class.carve_validation(spec, settings.seed)
            spec = self.spec = self.carved.spec
            self.say(f"note: the FeatureSpec has no validation mapping: {self.carved.what}")
        try:
            self._build(settings, task_class, spec)
        except BaseException:
            self.close()
            raise

    def _build(self, settings, task_class: type[Task], spec: FeatureSpec) -> None:
        runtime = self.runtime
        # --init_from continues someone's model: its architecture wins over the flags.
        self.init = saved.load(settings.init_from, spec, tables="extends", what=f"--init_from {settings.init_from}") \
            if settings.init_from else None
        settings = settings.replace(**task_class.for_data(settings, spec))
        batch = task_class.batch(settings, spec, runtime.world)
        for note in batch.notes:
            self.say(note)
        self.settings = settings = settings.replace(batch_size=batch.total)
        shown = dict.fromkeys(("model", "epochs", "batch_size", "learning_rate", *task_class.defaults, "optimizer", "seed",
                               "amp"))
        self.say("settings: " + settings.describe(tuple(shown)))
        self.task = task = task_class(settings, spec, runtime, self.say)
        self.report = Report(settings, runtime, task)
        if self.carved is not None:
            self.report.validation = self.carved.what
        self.splits = [] if settings.no_eval else [s for s in ("validation", "test") if s in spec.source_spec]
        self.selection = Selection("validation" if "validation" in self.splits else None, task.selection_metric)
        if not self.splits and not settings.no_eval:
            self.say("note: the FeatureSpec has no validation or test mapping; training without evaluation")
        self.arch = self.init.architecture if self.init else task.architecture()
        torch.manual_seed(settings.seed)
        self.model = build_model(self.arch, spec.table_sizes, settings.dropout).to(runtime.device)
        self.optimizer = optim.build(settings.optimizer, self.model.parameters(), settings.learning_rate,
                                     settings.beta1, settings.beta2, settings.eps)
        self.scaler = runtime.grad_scaler()
        self.start_epoch, self.step, self.best_state, self.elapsed = 0, 0, None, 0.0
        self.chosen: dict = {}  # settings the task chose while initialising (e.g. --alpha on validation)
        self.given_weights = False  # started from weights someone handed over (--init_from, pretrained parts)
        self._restore()
        self.ddp = DistributedDataParallel(self.model) if runtime.world > 1 else None
        self.stream = task.stream(batch.per_rank)

    def close(self) -> None:
        """Remove what this run wrote only for itself (the stream's scratch parts, a carved validation set) and
        let go of the DDP wrapper: its reducer holds the process group, which shutdown() then destroys."""
        self.ddp = None
        if self.stream is not None:
            self.stream.close()
        if self.carved is not None:
            self.carved.close()

    def _restore(self) -> None:
        settings = self.settings
        if settings.resume:
            path = settings.checkpoint_dir / checkpoint.LAST
            payload = checkpoint.read(path)
            checkpoint.check_fits(payload, path, self.spec.table_sizes, self.arch)
            earlier = payload["meta"].get("args", {}).get("optimizer", "adam")
            if earlier != settings.optimizer:
                raise UserError(f"{path} was trained with --optimizer {earlier}: --resume it with the same, or start "
                                f"from its weights with --init_from and --optimizer {settings.optimizer}")
            self.model.load_state_dict(payload["model"])
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
            except ValueError as exc:  # e.g. written before one embedding table per side
                raise UserError(f"{path}: its optimizer state does not fit this model's parameters ({exc}); "
                                "start from its weights with --init_from instead of --resume")
            self.scaler.load_state_dict(payload["scaler"])
            self.start_epoch, self.step = payload["meta"]["epoch"] + 1, payload["meta"].get("step", 0)
            state = payload["meta"]["report"]
            self.report.history, self.elapsed = state["history"], state["elapsed"]
            self.selection.restore(state["best"])
            best = settings.checkpoint_dir / checkpoint.BEST
            self.best_state = checkpoint.read(best)["model"] if best.exists() else None
        elif self.init:
            self.given_weights = True
            model, added = self.init.build(self.spec.table_sizes, settings.dropout)
            self.model.load_state_dict(model.state_dict())
            if added:  # data of a grown workflow: old rows copied, new rows as a fresh model's
                self.say(f"grew {settings.init_from} onto this data's grown workflow: "
                         + ", ".join(f"{n:,} {role[:-1]} rows added" for role, n in added.items())
                         + " (initialised as a fresh model's); every old row copied unchanged")
        else:
            chosen = self.task.initialise(self.model)
            self.given_weights = chosen is not None
            if chosen:
                self.chosen = chosen
                self.settings = self.settings.replace(**chosen)

    def meta(self, epoch: int) -> dict:
        return {"epoch": epoch, "step": self.step, "cardinalities": self.spec.table_sizes,
                "workflow_id": self.spec.workflow_id, "architecture": self.arch, "args": self.settings.as_dict(),
                "report": {"history": self.report.history, "best": self.selection.best, "elapsed": self.elapsed}}

    def train_epoch(self, epoch: int) -> dict:
        settings, runtime, task = self.settings, self.runtime, self.task
        torch.manual_seed(epoch_seed(settings.seed, epoch, runtime.rank))  # dropout, latent samples
        self.model.train()
        net, no_sync = self.ddp or self.model, self.ddp.no_sync if self.ddp else None
        loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
        part_sums: dict = {}
        steps, units, begin = 0, 0, time.perf_counter()
        bar = tqdm(self.stream.epoch(epoch, settings.steps_per_epoch), desc=f"epoch {epoch}", unit="step", leave=False,
                   file=sys.stderr, disable=not (runtime.is_main and sys.stderr.isatty()))
        for batch in bar:
            loss, parts = accumulate_gradients(task, net, self.model, batch, settings.grads_accumulated, self.step,
                                               runtime, self.scaler, no_sync)
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
            checkpoint.save(self.settings.checkpoint_dir / checkpoint.BEST, state)
        checkpoint.save(self.settings.checkpoint_dir / checkpoint.LAST, {
            **state, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()})

    def validation_figures(self) -> dict:
        """The model's figures on the split that chooses the model, named as an epoch record names them."""
        found = self.task.evaluate(self.model, self.selection.split)
        return {(k if k.startswith("eval_") else self.selection.prefix + k): v for k, v in found.items()}

    def keep_best(self) -> None:
        """The chosen model's weights, tested at the end."""
        if "test" in self.splits:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def evaluate_start(self) -> None:
        """Weights given to start from (pretrained parts, --init_from) are a candidate too: training can only
        return a model at least as good on validation as the one it was handed (fine-tuning a pretrained NeuMF
        lowered validation on ml-100k: bench/NOTES.md)."""
        self.elapsed += self.task.initialise_seconds
        found = self.validation_figures()
        self.elapsed += found.get("eval_seconds", 0.0)
        self.selection.start(found, self.elapsed)
        self.report.starting_weights(found, self.selection.prefix)
        self.keep_best()
        if self.runtime.is_main and self.settings.checkpoint_dir:
            checkpoint.save(self.settings.checkpoint_dir / checkpoint.BEST,
                            {"model": self.model.state_dict(), "meta": self.meta(START_EPOCH)})

    def fit(self) -> dict:
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> dict:
        settings, runtime, report, task, selection = self.settings, self.runtime, self.report, self.task, self.selection
        for split in self.splits:
            report.baseline(split, task.baseline(split))
        report.start(task.describe(self.model), sum(p.numel() for p in self.model.parameters()), self.start_epoch,
                     selection.split)
        first = self.start_epoch
        if selection.split and first == 0 and self.given_weights:
            self.evaluate_start()
            if (selection.best_figure or 0.0) >= settings.threshold:
                report.say(f"{selection.key} of the starting weights reached --threshold {settings.threshold}: "
                           "no training")
                first = settings.epochs
        for epoch in range(first, settings.epochs):
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            if selection.split:
                record.update(self.validation_figures())
            self.elapsed += record["train_seconds"] + record.get("eval_seconds", 0.0)
            record["elapsed_seconds"] = self.elapsed
            improved = selection.consider(record)
            report.epoch(record, improved and selection.key in record, selection.prefix)
            if improved:
                self.keep_best()
            if runtime.is_main and settings.checkpoint_dir:
                self.save(epoch, improved)
            if selection.reached(record, settings.threshold):
                report.say(f"{selection.key} {record[selection.key]:.4f} reached --threshold {settings.threshold}: "
                           "stopping")
                break
        runtime.barrier()
        best = dict(selection.best)
        if "test" in self.splits and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            metrics = {**task.evaluate(self.model, "test"), **task.extra_test(self.model)}
            best = with_test_figures(best, metrics)
            report.final(metrics, best)
            count = task.evaluated("test")
            best["test_series"] = count
            report.warn_if_few(count)
        return {**report.summary(best, self.chosen, selection.prefix, selection.split), "seconds": self.elapsed,
                "settings": self.settings.as_dict()}


def train(args, runtime: Runtime) -> dict:
    """One training run of the family that fits the data (or --model), driven by its task."""
    spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("train",))
    task_class, settings = for_family(args, model_for(spec, args.model))
    with lock_outputs(settings, runtime):
        return task_class.drive(settings, lambda run: Trainer(run, runtime, task_class, spec).fit())


def run(argv=None) -> dict:
    """Train or evaluate as the command line would, and return the summary (for notebooks too)."""
    args = parse_args(argv)
    runtime = start_runtime(args.amp)
    try:
        if args.mode == "test":
            return evaluate_checkpoint(args, runtime)
        return train(args, runtime)
    finally:
        shutdown(runtime)


def main(argv=None) -> int:
    return entry_point(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())

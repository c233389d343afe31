"""`python -m training --mode test`: a saved checkpoint of any family on the data's test split, with the
popularity baseline on the same users, under the same keys as a training run's summary. A checkpoint of a
workflow that the data's grown workflow extends is grown as `--init_from` grows it (new rows a fresh
model's, said): what the older model knows, measured on the newer data."""
from __future__ import annotations

import torch

from contract.console import say
from contract.feature_spec import FeatureSpec

from . import saved
from .args import for_family
from .report import Report
from .runtime import Runtime
from .selection import with_test_figures


def evaluate_checkpoint(args, runtime: Runtime) -> dict:
    spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("train", "test"))
    loaded = saved.load(args.load_checkpoint_path, spec, tables="extends")
    task_class, settings = for_family(args, loaded.variant)
    settings = settings.replace(**task_class.for_data(settings, spec))
    task = task_class(settings, spec, runtime, say if runtime.is_main else (lambda message: None))
    report = Report(settings, runtime, task)
    torch.manual_seed(settings.seed)
    model, added = loaded.build(spec.table_sizes)
    if added:
        report.say(f"note: {args.load_checkpoint_path} predates this data's grown workflow: "
                   + ", ".join(f"{n:,} {role[:-1]} rows" for role, n in added.items())
                   + " have no trained values (a fresh model's); grow and train it with --init_from")
    model = model.to(runtime.device).eval()
    report.baseline("test", task.baseline("test"))
    metrics = {**task.evaluate(model, "test"), **task.extra_test(model)}
    best = with_test_figures({"best_epoch": loaded.meta.get("epoch")}, metrics)
    report.final(metrics, best)
    return {**best, **report.baselines, "model": loaded.variant, "k": settings.topk,
            "checkpoint": str(args.load_checkpoint_path)}

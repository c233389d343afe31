"""`python -m training --mode test`: a saved checkpoint of any family on the data's test split, with the
popularity baseline on the same users, under the same keys as a training run's summary. A checkpoint of a
workflow that the data's grown workflow extends is grown as `--init_from` grows it (new rows a fresh
model's, said): what the older model knows, measured on the newer data."""
from __future__ import annotations

import torch

from contract.feature_spec import FeatureSpec

from . import checkpoint
from .args import for_family
from .growth import grow_model
from .models import build_model
from .report import Report
from .runtime import Runtime
from .tasks import check_layout, task_for


def evaluate_checkpoint(args, runtime: Runtime) -> dict:
    spec = FeatureSpec.from_yaml(args.data / args.feature_spec_file, ("train", "test"))
    payload = checkpoint.load(args.load_checkpoint_path)
    meta = payload["meta"]
    variant = meta["architecture"]["variant"]
    check_layout(task_for(variant), variant, spec, f"checkpoint {args.load_checkpoint_path} ({variant})")
    checkpoint.check_extends(payload, args.load_checkpoint_path, spec)
    task_class = for_family(args, variant)
    report = Report(args, runtime)
    task = report.task = task_class(args, spec, runtime, report.say)
    torch.manual_seed(args.seed)
    model = build_model(meta["architecture"], spec.table_sizes).to(runtime.device)
    if meta["cardinalities"] == spec.table_sizes:
        model.load_state_dict(payload["model"])
    else:
        added = grow_model(model, payload["model"], args.load_checkpoint_path)
        report.say(f"note: {args.load_checkpoint_path} predates this data's grown workflow: "
                   + ", ".join(f"{n:,} {role[:-1]} rows" for role, n in added.items())
                   + " have no trained values (a fresh model's); grow and train it with --init_from")
    model.eval()
    report.baseline("test", task.baseline("test"))
    report.best = {"best_epoch": meta.get("epoch")}
    report.final({**task.evaluate(model, "test"), **task.extra_test(model)})
    return {**report.best, **report.baselines, "model": variant, "k": args.topk,
            "checkpoint": str(args.load_checkpoint_path)}

"""`python -m training --mode test`: a saved checkpoint of any family on the data's test split, with the
popularity baseline on the same users, under the same keys as a training run's summary."""
from __future__ import annotations

from contract.feature_spec import FeatureSpec

from . import checkpoint
from .args import for_family
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
    checkpoint.check_fits(payload, args.load_checkpoint_path, spec.table_sizes)
    task_class = for_family(args, variant)
    report = Report(args, runtime)
    task = report.task = task_class(args, spec, runtime, report.say)
    model = build_model(meta["architecture"], spec.table_sizes).to(runtime.device)
    model.load_state_dict(payload["model"])
    model.eval()
    report.baseline("test", task.baseline("test"))
    report.best = {"best_epoch": meta.get("epoch")}
    report.final({**task.evaluate(model, "test"), **task.extra_test(model)})
    return {**report.best, **report.baselines, "model": variant, "k": args.topk,
            "checkpoint": str(args.load_checkpoint_path)}

"""The command line of `python -m training`: one parser for every model family.

Shared concepts have one flag, with DeepLearningExamples' spellings of both NCF and VAE-CF as aliases
(`-l/--learning_rate/--lr`, `-b/--batch_size/--batch_size_train`, `-k/--topk/--top_results`,
`--valid_batch_size/--batch_size_validation`, `--l2/--lam`). Where a family has its own default for a
shared flag, the flag's default is None here and the family fills it in (`Task.defaults`); a family's own
flags sit in its group, and giving one to another family is refused in one line. What a shared flag means
for each family, and the families themselves, come from the task registry.

`parse_args` checks what needs no data; `for_family` resolves the flags once into the run's frozen
`Settings` (defaults filled in, the family's checks passed, the run folder named).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from contract.errors import UserError

from .optim import OPTIMIZERS
from .settings import Settings
from .tasks import TASKS, default_for_layout, model_names, task_for
from .tasks.base import Task, path


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except where there is none to show (a family fills it in, or a switch is off)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def per_family(name: str) -> str:
    """'(default: 10 for neumf (30 for mf), 60 for multvae)' for a shared flag with per-family defaults."""
    values = []
    for task in (task for task in TASKS if name in task.defaults):
        own = [f"{chosen[name]} for {variant}" for variant, chosen in task.variant_defaults.items() if name in chosen]
        values.append(f"{task.defaults[name]} for {task.family}" + (f" ({', '.join(own)})" if own else ""))
    return f"(default: {', '.join(values)})"


def meaning(name: str, lead: str = "") -> str:
    """What a shared flag means for each family that says ('LEAD; neumf, gmf, mlp, mf: ...; multvae: ...')."""
    parts = [f"{', '.join(task.variants)}: {task.flag_help[name]}" for task in TASKS if name in task.flag_help]
    return "; ".join(([lead] if lead else []) + parts)


def family_groups(p: argparse.ArgumentParser) -> dict[type[Task], list[str]]:
    """Each family's own flags in a group of its own; the destinations of each family's flags."""
    own = {}
    for task in TASKS:
        group = p.add_argument_group(f"{', '.join(task.variants)} only ({task.layout} layout)")
        before = len(group._group_actions)
        task.add_arguments(group)
        own[task] = [action.dest for action in group._group_actions[before:]]
    return own


def own_flags() -> dict[type[Task], list[str]]:
    return family_groups(argparse.ArgumentParser(add_help=False))


def parser() -> argparse.ArgumentParser:
    layouts = default_for_layout()
    p = argparse.ArgumentParser(
        prog="python -m training", formatter_class=Help,
        epilog="Recipes: " + " ".join(f"{task.recipe}." for task in TASKS if task.recipe),
        description="Train or evaluate a recommender on a dataset described by a FeatureSpec. The data's layout "
                    "picks the family: " + ", ".join(f"{layout} ({task_for(name).prepare_hint.strip('`')}) -> {name}"
                                                     for layout, name in layouts.items()) + ".")
    p.add_argument("--data", type=path, required=True, help="DATA_DIR holding the feature spec")
    p.add_argument("--feature_spec_file", default="feature_spec.yaml", help="relative to --data")
    p.add_argument("--mode", choices=("train", "test"), default="train", help="train, or evaluate --load_checkpoint_path")
    p.add_argument("--model", choices=model_names(),
                   help="the family to train (default: the one the data's layout fits: "
                        + ", ".join(f"{layout} -> {name}" for layout, name in layouts.items()) + ")")
    p.add_argument("-e", "--epochs", type=int, help=per_family("epochs"))
    p.add_argument("-b", "--batch_size", "--batch_size_train", dest="batch_size", type=int,
                   help=meaning("batch_size", "per optimizer step over all ranks (default: sized to the data)"))
    p.add_argument("--valid_batch_size", "--batch_size_validation", dest="valid_batch_size", type=int,
                   help=meaning("valid_batch_size", "per evaluation forward pass (memory grows with it)") + " "
                        + per_family("valid_batch_size"))
    p.add_argument("--layers", type=int, nargs="+", help=meaning("layers") + " " + per_family("layers"))
    p.add_argument("-l", "--learning_rate", "--lr", dest="learning_rate", type=float, help=per_family("learning_rate"))
    p.add_argument("-k", "--topk", "--top_results", dest="topk", type=int,
                   help="K of HR@K, NDCG@K and Recall@K " + per_family("topk"))
    p.add_argument("--seed", type=int, default=1, help="every random stream derives from (seed, epoch, rank)")
    p.add_argument("--threshold", type=float, default=1.0,
                   help=meaning("threshold", "stop once the validation figure that picks the best epoch reaches this"))
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="sgd: plain SGD, as the NCF paper fine-tunes a model built from pretrained parts")
    p.add_argument("--beta1", type=float, default=0.9, help="Adam")
    p.add_argument("--beta2", type=float, default=0.999, help="Adam")
    p.add_argument("--eps", type=float, default=1e-8, help="Adam")
    p.add_argument("--dropout", type=float, help=meaning("dropout") + " " + per_family("dropout"))
    p.add_argument("--l2", "--lam", dest="l2", type=float, help=meaning("l2") + " " + per_family("l2"))
    p.add_argument("--grads_accumulated", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--steps_per_epoch", type=int, help="cap the steps of each epoch (benchmarks, smoke runs)")
    p.add_argument("--no_eval", action="store_true",
                   help="skip evaluation and the default run folder (throughput benchmarks)")
    p.add_argument("--eval", choices=tuple(dict.fromkeys(p for task in TASKS for p in task.protocols)),
                   help=meaning("eval", "test protocol") + " " + per_family("eval"))
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler on CUDA, bf16 autocast on CPU")
    p.add_argument("--checkpoint_dir", type=path,
                   help="write model.pth (best validation figure) and last.pth here (default: a new folder under "
                        "runs/, with the log, unless --log_path is given)")
    p.add_argument("--load_checkpoint_path", type=path,
                   help="model to evaluate (--mode test), or to start training from (ours or a DLE state_dict)")
    p.add_argument("--resume", action="store_true", help="continue from CHECKPOINT_DIR/last.pth")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints in --checkpoint_dir and the --log_path of an earlier run")
    p.add_argument("--init_from", type=path, help="start from these weights (e.g. to continue on new data)")
    p.add_argument("--log_path", type=path, help="JSON lines, one per epoch (a PNG plot is written beside it)")
    p.add_argument("--tensorboard", type=path, help="also write TensorBoard scalars to this folder")
    family_groups(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The flags as given, with the checks that need no data; `for_family` completes them."""
    p = parser()
    args = p.parse_args(None if argv is None else [str(a) for a in argv])
    if args.mode == "test" and not args.load_checkpoint_path:
        p.error("--mode test needs --load_checkpoint_path")
    if args.resume and not args.checkpoint_dir:
        p.error("--resume needs --checkpoint_dir")
    if args.mode == "train" and args.load_checkpoint_path:  # DLE: the weights to start training from
        if args.init_from:
            p.error("--load_checkpoint_path and --init_from name the same thing; give one")
        args.init_from = args.load_checkpoint_path
    if args.resume and args.init_from:
        p.error("--resume and --init_from are exclusive")
    if args.resume and args.overwrite:
        p.error("--resume continues the run that --overwrite would replace; give one")
    for name in ("epochs", "batch_size", "valid_batch_size", "topk", "grads_accumulated", "steps_per_epoch"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.learning_rate is not None and not args.learning_rate > 0:
        p.error("--learning_rate must be positive")
    if not args.eps > 0:
        p.error("--eps must be positive")
    if not (0 <= args.beta1 < 1 and 0 <= args.beta2 < 1):
        p.error("--beta1 and --beta2 must be in [0, 1)")
    if args.l2 is not None and args.l2 < 0:
        p.error("--l2 must not be negative")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        p.error("--dropout must be in [0, 1)")
    return args


def for_family(args: argparse.Namespace, variant: str) -> tuple[type[Task], Settings]:
    """The family's task and the run's settings: its defaults filled in, other families' flags refused, its
    flags checked, the run folder named. Nothing changes them afterwards."""
    task = task_for(variant)
    values = {**vars(args), "model": variant}
    flags = own_flags()
    for other, dests in flags.items():
        for dest in dests if other is not task else ():
            if values.get(dest) is not None and dest not in flags[task]:  # families of a layout may share flags
                raise UserError(f"--{dest} is a flag of {', '.join(other.variants)}; this run is {variant}")
    for name, value in {**task.defaults, **task.variant_defaults.get(variant, {})}.items():
        if values.get(name) is None:
            values[name] = value
    if values["eval"] not in task.protocols:
        raise UserError(f"--eval {values['eval']}: {variant} evaluates with {' or '.join(task.protocols)}")
    settings = Settings(**values)

    def error(message: str):
        raise UserError(message)

    task.check_args(settings, error)
    if settings.mode == "train" and not settings.no_eval and not settings.checkpoint_dir and not settings.log_path:
        folder = default_run_folder(settings.data, variant)
        settings = settings.replace(checkpoint_dir=folder, log_path=folder / "log.jsonl")
    return task, settings


def default_run_folder(data: Path, variant: str) -> Path:
    """runs/DATA-NAME/MODEL-YYYYmmdd-HHMMSS: a new folder per run, so nothing earlier is replaced."""
    return Path("runs") / (data.resolve().name or "data") / f"{variant}-{time.strftime('%Y%m%d-%H%M%S')}"

"""--pretrain: GMF, then MLP, then NeuMF initialised from both (the NCF paper's recipe, He et al. 2017
section 3.4.1), each stage a run of the one training loop under CHECKPOINT_DIR/{gmf,mlp,neumf}.

As in the paper the parts train with Adam for longer (PART_EPOCHS x -e), and the NeuMF made of them is
fine-tuned with plain SGD: Adam's first steps, without moment estimates, move every weight by about the
learning rate and undo what the parts learnt. The blend weight --alpha is chosen on validation.
"""
from __future__ import annotations

import argparse
import math

from contract.feature_spec import FeatureSpec

from . import checkpoint
from .runtime import Runtime
from .tasks.neumf import PART_EPOCHS


def stage_args(args, variant: str) -> dict:
    """The flags of one stage: a part, or the NeuMF fine-tuned from both parts."""
    if variant == "neumf":
        return {"epochs": max(1, math.ceil(args.epochs / (2 * PART_EPOCHS))), "optimizer": "sgd",
                "pretrained_gmf": args.checkpoint_dir / "gmf" / checkpoint.BEST,
                "pretrained_mlp": args.checkpoint_dir / "mlp" / checkpoint.BEST}
    return {"epochs": args.epochs * PART_EPOCHS, "optimizer": args.optimizer}


def pretrain(args, runtime: Runtime, task_class, spec: FeatureSpec) -> dict:
    from .train import Trainer

    def stage(variant: str) -> dict:
        staged = argparse.Namespace(**{**vars(args), "model": variant, "pretrain": False,
                                       "checkpoint_dir": args.checkpoint_dir / variant, **stage_args(args, variant)})
        if args.log_path:
            staged.log_path = args.log_path.with_name(f"{args.log_path.stem}.{variant}{args.log_path.suffix}")
        if args.tensorboard:
            staged.tensorboard = args.tensorboard / variant
        trainer = Trainer(staged, runtime, task_class, spec)
        trainer.report.say(f"--pretrain: training {variant} into {staged.checkpoint_dir} ({staged.epochs} epochs, "
                           f"{staged.optimizer})")
        summary = trainer.fit()
        if variant == "neumf":
            return {**summary, "alpha": staged.alpha}
        return {**summary, "seconds": trainer.report.elapsed}

    stages = {variant: stage(variant) for variant in ("gmf", "mlp")}
    final = stage("neumf")
    if final.get("time_to_best") is not None:  # time to quality counts the parts' training and evaluation too
        final["time_to_best"] += sum(s["seconds"] for s in stages.values())
    keep = ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "full_hr", "full_ndcg", "seconds")
    return {**final, "pretrain": {v: {k: s.get(k) for k in keep} for v, s in stages.items()}}

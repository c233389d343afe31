"""--pretrain: GMF, then MLP, then NeuMF initialised from both (the NCF paper's recipe, He et al. 2017
section 3.4.1), each stage a run of the one training loop under CHECKPOINT_DIR/{gmf,mlp,neumf}."""
from __future__ import annotations

import argparse

from contract.feature_spec import FeatureSpec

from . import checkpoint
from .runtime import Runtime


def pretrain(args, runtime: Runtime, task_class, spec: FeatureSpec) -> dict:
    from .train import Trainer

    def stage(variant: str, **extra) -> dict:
        staged = argparse.Namespace(**{**vars(args), "model": variant, "pretrain": False,
                                       "checkpoint_dir": args.checkpoint_dir / variant, **extra})
        if args.log_path:
            staged.log_path = args.log_path.with_name(f"{args.log_path.stem}.{variant}{args.log_path.suffix}")
        if args.tensorboard:
            staged.tensorboard = args.tensorboard / variant
        trainer = Trainer(staged, runtime, task_class, spec)
        trainer.report.say(f"--pretrain: training {variant} into {staged.checkpoint_dir}")
        return trainer.fit()

    stages = {variant: stage(variant) for variant in ("gmf", "mlp")}
    final = stage("neumf", pretrained_gmf=args.checkpoint_dir / "gmf" / checkpoint.BEST,
                  pretrained_mlp=args.checkpoint_dir / "mlp" / checkpoint.BEST)
    keep = ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "full_hr", "full_ndcg")
    return {**final, "pretrain": {v: {k: s.get(k) for k in keep} for v, s in stages.items()}}

"""--pretrain: GMF, then MLP, then NeuMF initialised from both (the NCF paper's recipe, He et al. 2017
section 3.4.1), each stage a run of the one training loop under CHECKPOINT_DIR/{gmf,mlp,neumf}: NeuMF's task
drives the loop three times (`NeuMFTask.drive`); the loop knows nothing of it.

As in the paper the parts train with Adam for longer (PART_EPOCHS x -e), and the NeuMF made of them is
fine-tuned with plain SGD: Adam's first steps, without moment estimates, move every weight by about the
learning rate and undo what the parts learnt. The blend weight --alpha is chosen on validation.
"""
from __future__ import annotations

import math
import os

from contract.console import say

from .. import checkpoint

# The parts train this many times -e (the paper trains them to convergence; GMF on the NCF ml-1m split was
# still rising at epoch 10 and peaked at 16); NeuMF is then fine-tuned a quarter of -e.
PART_EPOCHS = 2
PARTS = ("gmf", "mlp")


def stage_settings(settings, variant: str):
    """The settings of one stage: a part, or the NeuMF fine-tuned from both parts."""
    changes = {"model": variant, "pretrain": False, "checkpoint_dir": settings.checkpoint_dir / variant}
    if variant in PARTS:
        changes.update(epochs=settings.epochs * PART_EPOCHS, optimizer=settings.optimizer)
    else:
        changes.update(epochs=max(1, math.ceil(settings.epochs / (2 * PART_EPOCHS))), optimizer="sgd",
                       pretrained_gmf=settings.checkpoint_dir / "gmf" / checkpoint.BEST,
                       pretrained_mlp=settings.checkpoint_dir / "mlp" / checkpoint.BEST)
    if settings.log_path:
        log = settings.log_path
        changes["log_path"] = log.with_name(f"{log.stem}.{variant}{log.suffix}")
    if settings.tensorboard:
        changes["tensorboard"] = settings.tensorboard / variant
    return settings.replace(**changes)


def drive(settings, fit) -> dict:
    """The three stages; the summary of the last, with the time to quality counting the parts' too."""

    def stage(variant: str) -> dict:
        staged = stage_settings(settings, variant)
        if int(os.environ.get("RANK", "0")) == 0:
            say(f"--pretrain: training {variant} into {staged.checkpoint_dir} ({staged.epochs} epochs, "
                f"{staged.optimizer})")
        return fit(staged)

    stages = {variant: stage(variant) for variant in PARTS}
    final = stage("neumf")
    if final.get("time_to_best") is not None:  # time to quality counts the parts' training and evaluation too
        final["time_to_best"] += sum(s["seconds"] for s in stages.values())
    keep = ("best_hr", "best_ndcg", "best_valid_hr", "best_epoch", "full_hr", "full_ndcg", "seconds")
    return {**final, "pretrain": {v: {k: s.get(k) for k in keep} for v, s in stages.items()}}

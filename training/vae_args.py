"""Command-line flags of `python -m training.vae`: DeepLearningExamples' VAE-CF names where they apply,
the project's re-run flags, defaults tuned for MovieLens-1M-sized data on a 2-core CPU."""
from __future__ import annotations

import argparse

from .args import path
from .models.multvae import ACTIVATIONS

RECALL_AT = (20, 50)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.vae",
        description="Train or evaluate Mult-VAE (VAE-CF) on the lists layout (`etl prepare --split users`). "
        "`python -m training.vae recommend --help` for recommendations. DLE's ml-20m recipe on GPUs: "
        "--batch_size_train 24576 --lr 0.004 --beta2 0.9 --total_anneal_steps 15000 --anneal_cap 0.1 -e 400 --amp",
    )
    p.add_argument("--data", type=path, required=True, help="DATA_DIR holding the feature spec (lists layout)")
    p.add_argument("--feature_spec_file", default="feature_spec.yaml", help="relative to --data")
    p.add_argument("--mode", choices=("train", "test"), default="train")
    p.add_argument("-e", "--epochs", type=int, default=60)
    p.add_argument("--batch_size_train", type=int, default=500, help="users per optimizer step over all ranks")
    p.add_argument("--batch_size_validation", type=int, default=2000, help="users per evaluation forward pass")
    p.add_argument("--total_anneal_steps", type=int, default=2000,
                   help="optimizer steps over which the KL weight grows linearly from 0 to --anneal_cap")
    p.add_argument("--anneal_cap", type=float, default=0.2, help="largest KL weight (beta)")
    p.add_argument("--lam", type=float, default=0.0, help="L2 weight on the weight matrices: loss += lam * |W|^2")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--top_results", type=int, default=100, help="K of NDCG@K (Recall is at 20 and 50)")
    p.add_argument("--layers", type=int, nargs="+", default=[600, 200],
                   help="encoder sizes, the last one the latent size; the decoder mirrors them")
    p.add_argument("--dropout", type=float, default=0.5, help="input dropout (DLE: keep probability 0.5)")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), default="tanh")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps_per_epoch", type=int, help="cap the steps of each epoch (benchmarks, smoke runs)")
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler on CUDA, bf16 autocast on CPU")
    p.add_argument("--checkpoint_dir", type=path, help="write model.pth (best validation NDCG) and last.pth here")
    p.add_argument("--load_checkpoint_path", type=path, help="the model to evaluate with --mode test")
    p.add_argument("--resume", action="store_true", help="continue from CHECKPOINT_DIR/last.pth")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints in --checkpoint_dir and the --log_path of an earlier run")
    p.add_argument("--log_path", type=path, help="JSON lines, one per epoch (a PNG plot is written beside it)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.mode == "test" and not args.load_checkpoint_path:
        p.error("--mode test needs --load_checkpoint_path")
    if args.mode == "train" and args.load_checkpoint_path:
        p.error("--load_checkpoint_path is for --mode test; continue a run with --checkpoint_dir DIR --resume")
    if args.resume and not args.checkpoint_dir:
        p.error("--resume needs --checkpoint_dir")
    if args.resume and args.overwrite:
        p.error("--resume continues the run that --overwrite would replace; give one")
    for name in ("epochs", "batch_size_train", "batch_size_validation", "top_results"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        p.error("--steps_per_epoch must be at least 1")
    if args.total_anneal_steps < 0 or args.anneal_cap < 0 or args.lam < 0:
        p.error("--total_anneal_steps, --anneal_cap and --lam must not be negative")
    if not args.lr > 0:
        p.error("--lr must be positive")
    if not (0 <= args.beta1 < 1 and 0 <= args.beta2 < 1):
        p.error("--beta1 and --beta2 must be in [0, 1)")
    if min(args.layers) < 1:
        p.error("--layers: sizes must be positive")
    if not 0 <= args.dropout < 1:
        p.error("--dropout must be in [0, 1)")
    return args

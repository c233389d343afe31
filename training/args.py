"""Command-line flags: DeepLearningExamples' ncf.py names, defaults tuned for ml-1m-sized data on CPU."""
from __future__ import annotations

import argparse
from pathlib import Path

from .models import MODEL_NAMES


def path(text: str) -> Path:
    """A Path flag; an empty value would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train or evaluate NeuMF on a dataset described by a FeatureSpec. "
        "Large-data recipe (DLE, ml-20m): -b 1048576 -l 0.0045 --beta1 0.25 --beta2 0.5 --layers 256 256 128 64",
    )
    p.add_argument("--data", type=path, required=True, help="DATA_DIR holding the feature spec")
    p.add_argument("--feature_spec_file", default="feature_spec.yaml", help="relative to --data")
    p.add_argument("--mode", choices=("train", "test"), default="train")
    p.add_argument("-e", "--epochs", type=int, default=10)
    p.add_argument("-b", "--batch_size", type=int,
                   help="samples per optimizer step over all ranks, negatives included (default: sized to the data, "
                        "about 64 steps per epoch, between 1,024 and 1,048,576)")
    p.add_argument("--valid_batch_size", type=int, default=2**18,
                   help="samples per evaluation forward pass (memory grows with it)")
    p.add_argument("-f", "--factors", type=int, default=32, help="GMF factors")
    p.add_argument("--layers", type=int, nargs="+", default=[128, 64, 32], help="MLP layer sizes")
    p.add_argument("--model", choices=MODEL_NAMES, default="neumf")
    p.add_argument("-n", "--negative_samples", type=int, default=4, help="negatives per positive")
    p.add_argument("-l", "--learning_rate", type=float, default=0.005)
    p.add_argument("-k", "--topk", type=int, default=10, help="K of HR@K and NDCG@K")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threshold", type=float, default=1.0, help="stop once HR@K reaches this")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=0.0,
                   help="L2 weight on the embedding rows each batch uses (squared norms, batch mean)")
    p.add_argument("--grads_accumulated", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--steps_per_epoch", type=int, help="cap the steps of each epoch (benchmarks, smoke runs)")
    p.add_argument("--no_eval", action="store_true", help="skip evaluation (throughput benchmarks)")
    p.add_argument("--eval", choices=("sampled", "full", "both"), default="sampled",
                   help="test protocol: K among the series' sampled negatives (DLE) each epoch, full ranking "
                        "against the whole catalogue of the chosen model at the end, or both")
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler on CUDA, bf16 autocast on CPU")
    p.add_argument("--checkpoint_dir", type=path, help="write model.pth (best HR) and last.pth here")
    p.add_argument("--load_checkpoint_path", type=path,
                   help="model to evaluate (--mode test), or to start training from (ours or a DLE state_dict)")
    p.add_argument("--resume", action="store_true", help="continue from CHECKPOINT_DIR/last.pth")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints in --checkpoint_dir and the --log_path of an earlier run")
    p.add_argument("--init_from", type=path, help="start from these weights (e.g. to continue on new data)")
    p.add_argument("--pretrained_gmf", type=path, help="NeuMF from this GMF checkpoint and --pretrained_mlp")
    p.add_argument("--pretrained_mlp", type=path, help="NeuMF from this MLP checkpoint and --pretrained_gmf")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the GMF head in the pretrained NeuMF")
    p.add_argument("--pretrain", action="store_true",
                   help="train GMF, then MLP, then NeuMF from both, under CHECKPOINT_DIR/{gmf,mlp,neumf}")
    p.add_argument("--log_path", type=path, help="JSON lines, one per epoch (a PNG plot is written beside it)")
    p.add_argument("--tensorboard", type=path, help="also write TensorBoard scalars to this folder")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    p = parser()
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
    if bool(args.pretrained_gmf) != bool(args.pretrained_mlp):
        p.error("--pretrained_gmf and --pretrained_mlp come together")
    if args.pretrained_gmf and (args.init_from or args.resume or args.pretrain or args.model != "neumf"):
        p.error("--pretrained_gmf/--pretrained_mlp build a new NeuMF: not with --init_from, --resume, --pretrain "
                "or another --model")
    if args.pretrain and (args.mode != "train" or not args.checkpoint_dir or args.resume or args.init_from
                          or args.model != "neumf"):
        p.error("--pretrain trains neumf from scratch in three stages: it needs --checkpoint_dir, and not --resume, "
                "--init_from or another --model")
    if not 0 <= args.alpha <= 1:
        p.error("--alpha must be in [0, 1]")
    if args.resume and args.overwrite:
        p.error("--resume continues the run that --overwrite would replace; give one")
    for name in ("epochs", "batch_size", "valid_batch_size", "factors", "negative_samples", "topk",
                 "grads_accumulated"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    for name in ("learning_rate", "eps"):
        if not getattr(args, name) > 0:
            p.error(f"--{name} must be positive")
    if not (0 <= args.beta1 < 1 and 0 <= args.beta2 < 1):
        p.error("--beta1 and --beta2 must be in [0, 1)")
    if min(args.layers) < 1 or args.layers[0] % 2 or len(args.layers) < 2:
        p.error("--layers: at least two sizes, all positive, the first even (it is the user and item vectors "
                "side by side)")
    if args.l2 < 0:
        p.error("--l2 must not be negative")
    if not 0 <= args.dropout < 1:
        p.error("--dropout must be in [0, 1)")
    return args

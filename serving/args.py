"""The command line of `python -m serving` (importable without starting anything)."""
from __future__ import annotations

import argparse
from pathlib import Path

from training.recommend import add_recommender_arguments


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve a trained checkpoint of any family (NeuMF, GMF, MLP on pairs data; Mult-VAE on lists data) "
                    "on a Triton Inference Server: model `recommend` (raw user ids -> top-K raw item ids, as "
                    "training.recommend) and model `score` (raw user and item ids -> logits; Mult-VAE folds in the "
                    "user's history from --data). SIGTERM or Ctrl-C stops it.")
    add_recommender_arguments(p)
    p.add_argument("--topk", type=int, default=10, help="items per user returned by `recommend`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, help="also serve gRPC on this port (default: HTTP only)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics on this port (default: none)")
    p.add_argument("--batch-users", type=int, default=256, help="users scored per forward pass")
    p.add_argument("--max-batch-users", type=int, default=1024,
                   help="the most users Triton hands `recommend` at once (also the largest request it accepts)")
    p.add_argument("--max-batch-pairs", type=int, default=65536,
                   help="the most (user, item) pairs Triton hands `score` at once (also its largest request)")
    p.add_argument("--queue-delay-us", type=int, default=1000,
                   help="how long the dynamic batcher waits for more requests to join a batch")
    p.add_argument("--triton-log", type=Path, help="keep Triton's own log in this file (default: discarded at exit)")
    p.add_argument("--exit-timeout", type=int, default=5, help="seconds in-flight requests get when stopping")
    return p

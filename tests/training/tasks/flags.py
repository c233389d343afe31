"""Flags a task reads, for tests that build a task without the command line."""
from __future__ import annotations

from argparse import Namespace


def Args(**given) -> Namespace:  # noqa: N802 - reads as the Namespace it returns
    defaults = {"l2": 0.0, "topk": 10, "eval": "sampled", "valid_batch_size": 2**16, "seed": 1, "batch_size": None,
                "negative_samples": 4, "total_anneal_steps": 10, "anneal_cap": 0.2, "pretrained_gmf": None}
    return Namespace(**{**defaults, **given})

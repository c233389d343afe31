"""Model families by name. Each builder takes an architecture dict and the embedding table sizes,
so training, evaluation, recommend and checkpoints build any family the same way."""
from __future__ import annotations

from torch import nn

from .neumf import VARIANTS as NEUMF_VARIANTS
from .neumf import NeuMF


def _neumf(arch: dict, sizes: dict, dropout: float) -> nn.Module:
    return NeuMF(sizes["users"], sizes["items"], arch["factors"], arch["layers"], dropout, arch["variant"])


BUILDERS = {variant: _neumf for variant in NEUMF_VARIANTS}
MODEL_NAMES = tuple(BUILDERS)


def architecture(args) -> dict:
    """The architecture a run asks for on the command line (what checkpoints record)."""
    return {"variant": args.model, "factors": args.factors, "layers": list(args.layers)}


def build_model(arch: dict, sizes: dict, dropout: float = 0.0) -> nn.Module:
    return BUILDERS[arch["variant"]](arch, sizes, dropout)

"""Model families by name. Each builder takes an architecture dict (what checkpoints record) and the
embedding table sizes, so training, evaluation, recommend, serving and export build any family alike."""
from __future__ import annotations

from torch import nn

from contract.errors import UserError

from .multvae import VARIANTS as MULTVAE_VARIANTS
from .multvae import MultVAE
from .neumf import VARIANTS as NEUMF_VARIANTS
from .neumf import NeuMF
from .neumf import architecture_of as neumf_architecture_of


def _neumf(arch: dict, sizes: dict, dropout: float) -> nn.Module:
    return NeuMF(sizes["users"], sizes["items"], arch["factors"], arch["layers"], dropout, arch["variant"])


def _multvae(arch: dict, sizes: dict, dropout: float) -> nn.Module:
    return MultVAE(sizes["items"], arch["dims"], dropout, arch["activation"])


BUILDERS = {**{variant: _neumf for variant in NEUMF_VARIANTS}, **{variant: _multvae for variant in MULTVAE_VARIANTS}}


def build_model(arch: dict, sizes: dict, dropout: float = 0.0) -> nn.Module:
    if arch.get("variant") not in BUILDERS:
        raise UserError(f"unknown model {arch.get('variant')!r}; the families are {', '.join(BUILDERS)}")
    return BUILDERS[arch["variant"]](arch, sizes, dropout)


def architecture_of(state: dict) -> dict:
    """Architecture and table sizes read from a bare state_dict's shapes (DeepLearningExamples' NeuMF model.pth)."""
    return neumf_architecture_of(state)

"""Model families by name. Each builder takes an architecture dict and the embedding table sizes,
so training, evaluation, recommend and checkpoints build any family the same way."""
from __future__ import annotations

from torch import nn

from contract.errors import UserError

from .multvae import MultVAE
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
    if arch["variant"] not in BUILDERS:
        raise UserError(f"this is a {arch['variant']} checkpoint, not a (user, item) scorer: use python -m training.vae")
    return BUILDERS[arch["variant"]](arch, sizes, dropout)


def _multvae(arch: dict, sizes: dict, dropout: float) -> nn.Module:
    return MultVAE(sizes["items"], arch["dims"], dropout, arch["activation"])


# List models score a user's whole history against every item (forward: a CSR batch of users x items ->
# logits over items). They have their own registry because everything that builds from BUILDERS (--model,
# --mode test, recommend, --init_from of python -m training) calls model(users, items).
LIST_BUILDERS = {"multvae": _multvae}


def build_list_model(arch: dict, sizes: dict, dropout: float = 0.0) -> nn.Module:
    if arch["variant"] not in LIST_BUILDERS:
        raise UserError(f"this is a {arch['variant']} checkpoint, not a list model (Mult-VAE): use python -m training")
    return LIST_BUILDERS[arch["variant"]](arch, sizes, dropout)

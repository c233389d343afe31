"""NeuMF (He et al. 2017) as in DeepLearningExamples, with GMF-only and MLP-only variants."""
from __future__ import annotations

import math

import torch
from torch import nn

VARIANTS = ("neumf", "gmf", "mlp")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout. On CPU, torch's Bernoulli mask costs ~20 ns per element (more than the
    MLP's matmuls at p=0.5); random bytes from one int64 draw per 8 elements are ~20x cheaper.
    The CPU path rounds p to a multiple of 1/256 (exact for 0.5, 0.25, ...)."""
    if not training or p == 0:
        return x
    if x.is_cuda:
        return nn.functional.dropout(x, p, True)
    n = x.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    drop_below = round(p * 256)
    keep = words.view(torch.uint8)[:n].view(x.shape) >= drop_below
    return x * keep * (256.0 / (256 - drop_below))


def lecun_uniform_(layer: nn.Linear) -> None:
    limit = math.sqrt(3.0 / layer.in_features)
    nn.init.uniform_(layer.weight, -limit, limit)


def glorot_uniform_(layer: nn.Linear) -> None:
    limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -limit, limit)


class NeuMF(nn.Module):
    """Scores (user, item) pairs with logits.

    GMF branch: user ⊙ item factor vectors. MLP branch: concatenated user and item
    vectors through ReLU layers with dropout. The final Linear sees both branches.
    """

    def __init__(self, nb_users: int, nb_items: int, mf_dim: int = 64, mlp_layer_sizes=(256, 256, 128, 64),
                 dropout: float = 0.5, variant: str = "neumf"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown model variant {variant!r}; choose from {VARIANTS}")
        if mlp_layer_sizes[0] % 2:
            raise ValueError("the first MLP layer size must be even (it is user + item vectors)")
        self.variant = variant
        self.use_mf = variant in ("neumf", "gmf")
        self.use_mlp = variant in ("neumf", "mlp")
        self.dropout = dropout
        final_in = 0
        if self.use_mf:
            self.mf_user_embed = nn.Embedding(nb_users, mf_dim)
            self.mf_item_embed = nn.Embedding(nb_items, mf_dim)
            final_in += mf_dim
        if self.use_mlp:
            half = mlp_layer_sizes[0] // 2
            self.mlp_user_embed = nn.Embedding(nb_users, half)
            self.mlp_item_embed = nn.Embedding(nb_items, half)
            self.mlp = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(mlp_layer_sizes[:-1], mlp_layer_sizes[1:])
            )
            final_in += mlp_layer_sizes[-1]
        self.final = nn.Linear(final_in, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.01)
        if self.use_mlp:
            for layer in self.mlp:
                glorot_uniform_(layer)
        lecun_uniform_(self.final)

    def embedding_penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared norms of the embedding rows it uses (every table)."""
        tables = [(self.mf_user_embed, users), (self.mf_item_embed, items)] if self.use_mf else []
        tables += [(self.mlp_user_embed, users), (self.mlp_item_embed, items)] if self.use_mlp else []
        return sum(table(ids).pow(2).sum(dim=-1).mean() for table, ids in tables)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        branches = []
        if self.use_mf:
            branches.append(self.mf_user_embed(users) * self.mf_item_embed(items))
        if self.use_mlp:
            x = torch.cat([self.mlp_user_embed(users), self.mlp_item_embed(items)], dim=-1)
            for layer in self.mlp:
                x = torch.relu(layer(x))
                x = dropout(x, self.dropout, self.training)
            branches.append(x)
        return self.final(torch.cat(branches, dim=-1) if len(branches) > 1 else branches[0]).squeeze(-1)


def from_pretrained(gmf: dict, mlp: dict, alpha: float) -> dict:
    """A NeuMF state_dict made of a trained GMF and a trained MLP (He et al. 2017, section 3.4.1).

    The embeddings and MLP layers are copied; the final layer sees both branches side by side,
    so its weights are the two heads' weights scaled by alpha and 1 - alpha, and so is its bias.
    """
    state = {k: v for k, v in gmf.items() if k.startswith("mf_")}
    state.update({k: v for k, v in mlp.items() if k.startswith("mlp")})
    state["final.weight"] = torch.cat([alpha * gmf["final.weight"], (1 - alpha) * mlp["final.weight"]], dim=1)
    state["final.bias"] = alpha * gmf["final.bias"] + (1 - alpha) * mlp["final.bias"]
    return state


def architecture_of(state: dict) -> dict:
    """The architecture and table sizes behind a NeuMF state_dict (ours or DeepLearningExamples')."""
    has_mf, has_mlp = "mf_user_embed.weight" in state, "mlp_user_embed.weight" in state
    if not (has_mf or has_mlp) or "final.weight" not in state:
        raise KeyError("not a NeuMF state_dict")
    variant = "neumf" if has_mf and has_mlp else ("gmf" if has_mf else "mlp")
    n_layers = sum(1 for key in state if key.startswith("mlp.") and key.endswith(".weight"))
    layers = [int(state["mlp.0.weight"].shape[1])] + [int(state[f"mlp.{i}.weight"].shape[0]) for i in range(n_layers)] \
        if has_mlp else [2]
    user = state["mf_user_embed.weight" if has_mf else "mlp_user_embed.weight"]
    item = state["mf_item_embed.weight" if has_mf else "mlp_item_embed.weight"]
    factors = int(state["mf_user_embed.weight"].shape[1]) if has_mf else 8
    return {"architecture": {"variant": variant, "factors": factors, "layers": layers},
            "cardinalities": {"users": int(user.shape[0]), "items": int(item.shape[0])}}

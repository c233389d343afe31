"""NeuMF (He et al. 2017) as in DeepLearningExamples, with GMF-only and MLP-only variants, and MF: a GMF whose
head is fixed at ones, the plain dot product (plus a bias) that Rendle et al. 2020 found ahead of NeuMF. MF and
GMF may score with the cosine instead of the dot product (`similarity`, for SimpleX's loss)."""
from __future__ import annotations

import math

import torch
from torch import nn

VARIANTS = ("neumf", "gmf", "mlp", "mf")
SIMILARITIES = ("dot", "cosine")
GRID_PAIRS = 2**19  # pairs per slice of score_grid's MLP: bounds its activations (DLE model, fp32: 0.5 GB)


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

    GMF branch: user ⊙ item factor vectors. MLP branch: user and item vectors through ReLU layers
    with dropout. The final Linear sees both branches.

    Laid out for speed, computed as DeepLearningExamples' model: one embedding table per side holds
    both branches' vectors side by side (GMF factors, then the MLP half), so a batch is one lookup and
    one gradient scatter per side; the first MLP layer and the final layer multiply their inputs' parts
    by the matching slices of their weights and add, instead of concatenating the inputs first.
    `state_dict()` keeps DeepLearningExamples' names and shapes (mf_user_embed.weight, ...,
    mlp.0.weight, final.weight), so checkpoints read and write as before; `state_dict(keep_vars=True)`
    names the live parameters as they are (user_embed, item_embed).

    similarity="cosine" (mf and gmf only) scores cos(h ⊙ u, i): the cosine between the user's factor vector
    weighted by the GMF head h (ones for mf, learnt for gmf) and the item's, with no bias (the final bias stays 0
    and is not trained). Scores then lie in [-1, 1], as SimpleX's cosine contrastive loss needs, and forward,
    `grid` and `score_grid` (evaluation, recommend, serving) all score with it. The MLP tower has no pair of
    vectors to take the cosine of: mlp and neumf score with the dot product (their final layer) only.
    """

    def __init__(self, nb_users: int, nb_items: int, mf_dim: int = 64, mlp_layer_sizes=(256, 256, 128, 64),
                 dropout: float = 0.5, variant: str = "neumf", similarity: str = "dot"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown model variant {variant!r}; choose from {VARIANTS}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; choose from {SIMILARITIES}")
        if similarity == "cosine" and variant not in ("gmf", "mf"):
            raise ValueError("the cosine similarity scores mf and gmf only: the MLP tower has no pair of vectors to "
                             "take the cosine of")
        self.variant, self.similarity = variant, similarity
        self.use_mf = variant in ("neumf", "gmf", "mf")
        self.use_mlp = variant in ("neumf", "mlp")
        if self.use_mlp and len(mlp_layer_sizes) < 2:
            raise ValueError("the MLP needs at least two layer sizes (its input and one layer)")
        if self.use_mlp and mlp_layer_sizes[0] % 2:
            raise ValueError("the first MLP layer size must be even (it is user + item vectors)")
        self.dropout = dropout
        self.mf_dim = mf_dim if self.use_mf else 0
        self.mlp_half = mlp_layer_sizes[0] // 2 if self.use_mlp else 0
        self.user_embed = nn.Parameter(torch.empty(nb_users, self.mf_dim + self.mlp_half))
        self.item_embed = nn.Parameter(torch.empty(nb_items, self.mf_dim + self.mlp_half))
        if self.use_mlp:
            self.mlp = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(mlp_layer_sizes[:-1], mlp_layer_sizes[1:])
            )
        self.final = nn.Linear(self.mf_dim + (mlp_layer_sizes[-1] if self.use_mlp else 0), 1)
        self.reset_parameters()
        if variant == "mf":
            # GMF's learnt head h lets every row shrink by c while h grows by c^2: the scores stay and the L2 on
            # the rows falls, so the L2 never binds. A head fixed at ones makes it bind (bench/NOTES.md).
            self.final.weight.requires_grad_(False)
        if similarity == "cosine":  # a cosine has no bias: the scores stay in [-1, 1]
            self.final.bias.requires_grad_(False)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embed, 0.0, 0.01)
        nn.init.normal_(self.item_embed, 0.0, 0.01)
        if self.use_mlp:
            for layer in self.mlp:
                glorot_uniform_(layer)
        lecun_uniform_(self.final)
        if self.variant == "mf":
            nn.init.ones_(self.final.weight)
        if self.similarity == "cosine":
            nn.init.zeros_(self.final.bias)

    def embedding_penalty(self, users: torch.Tensor, items: torch.Tensor,
                          negatives: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the batch of the squared norms of the embedding rows it uses (both branches).

        With `negatives` (N,) shared by every user of the batch (forward's third argument), each user's rows
        are its item and the N shared items: the item term is the mean over those (P, 1 + N) pairs, the
        shared rows' mean weighing N times the positives' (as the rows of -n negatives per positive weigh)."""
        def mean_square(table, ids):
            return nn.functional.embedding(ids, table).pow(2).sum(dim=-1).mean()

        item = mean_square(self.item_embed, items)
        if negatives is not None:
            item = (item + len(negatives) * mean_square(self.item_embed, negatives)) / (1 + len(negatives))
        return mean_square(self.user_embed, users) + item

    def _branches(self, rows: torch.Tensor) -> tuple:
        """(GMF part, MLP part) of looked-up rows; None for a branch the variant lacks."""
        if self.use_mf and self.use_mlp:
            return rows.split([self.mf_dim, self.mlp_half], dim=-1)
        return (rows, None) if self.use_mf else (None, rows)

    def _user_side(self, users: torch.Tensor) -> tuple:
        """What scoring needs of users, computed once per user: (GMF vector, with the GMF head folded in and
        normalised for the cosine; the user's part of the first MLP layer, its bias included); None for a branch
        the variant lacks."""
        user_mf, user_mlp = self._branches(nn.functional.embedding(users, self.user_embed))
        if self.use_mf:
            user_mf = user_mf * self._final_weights()[0]  # h ⊙ u: the GMF head, so a pair is a dot product
            if self.similarity == "cosine":
                user_mf = nn.functional.normalize(user_mf, dim=-1)
        if self.use_mlp:
            first = self.mlp[0]
            user_mlp = nn.functional.linear(user_mlp, first.weight[:, :self.mlp_half], first.bias)
        return user_mf, user_mlp

    def _item_side(self, items: torch.Tensor) -> tuple:
        """What scoring needs of items, computed once per item: (GMF vector, normalised for the cosine; the
        item's part of the first MLP layer); first(cat(user, item)) is the sum of the two parts, without the cat."""
        item_mf, item_mlp = self._branches(nn.functional.embedding(items, self.item_embed))
        if self.use_mf and self.similarity == "cosine":
            item_mf = nn.functional.normalize(item_mf, dim=-1)
        if self.use_mlp:
            item_mlp = nn.functional.linear(item_mlp, self.mlp[0].weight[:, self.mlp_half:])
        return item_mf, item_mlp

    def _tower(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """The MLP head's logit of pairs from their first layer's pre-activation: ReLU and dropout after every layer."""
        x = dropout(torch.relu(x), self.dropout, training)
        for layer in self.mlp[1:]:
            x = dropout(torch.relu(layer(x)), self.dropout, training)
        return nn.functional.linear(x, self._final_weights()[-1]).squeeze(-1)

    def _bias(self):
        return 0.0 if self.similarity == "cosine" else self.final.bias

    def _pairs(self, user: tuple, item: tuple) -> torch.Tensor:
        """Logits of pairs from their sides; the item side shaped (..., P, ·) against the user side's (P, ·)."""
        logits = self._bias()
        if self.use_mf:
            logits = logits + (user[0] * item[0]).sum(dim=-1)
        if self.use_mlp:
            logits = logits + self._tower(user[1] + item[1], self.training)
        return logits

    def _grid(self, user: tuple, item: tuple, training: bool) -> torch.Tensor:
        """Logits of every (user, item) pair of the sides: (users, items). GMF is one matrix product; the MLP adds
        each user's part of the first layer to each item's, then runs the rest of the tower on every pair."""
        heads = ([nn.functional.linear(user[0], item[0])] if self.use_mf else []) + \
            ([self._tower(user[1][:, None, :] + item[1][None, :, :], training)] if self.use_mlp else [])
        return sum(heads) + self._bias()

    def forward(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of (users[p], items[..., p]): users (P,), items (P,) or (T, P), logits shaped as items.

        With items (T, P), each column is a positive's item and its negatives: they share the user's
        work (the lookup and the user's part of the first MLP layer), done once per column.

        With `negatives` (N,), items (P,): (P, 1 + N) logits, column 0 each user's item and columns 1.. every
        user against the N shared items (`grid`: one matrix product for GMF), with autograd and dropout as
        the pairs get them. One forward call, so DDP sees the whole computation.
        """
        user = self._user_side(users)
        pairs = self._pairs(user, self._item_side(items))
        if negatives is None:
            return pairs
        return torch.cat([pairs[:, None], self._grid(user, self._item_side(negatives), self.training)], dim=1)

    def grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(len(users), len(items)) logits of every pair, as forward() gives them in the model's mode (dropout
        when training) and with autograd: the scorer of training's shared negatives and of `score_grid`."""
        return self._grid(self._user_side(users), self._item_side(items), self.training)

    def _final_weights(self) -> tuple:
        """The final layer's weights for the GMF head and the MLP head (the variant's heads, in order)."""
        widths = (self.mf_dim, self.final.in_features - self.mf_dim)
        return self.final.weight.split([width for width in widths if width], dim=1)

    def score_grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(len(users), len(items)) logits of every pair, as forward() gives them in eval mode (no dropout).

        `grid` over slices of users: what depends on one side only is computed once per user and once per
        item (GMF becomes one matrix product; the first MLP layer's user part and item part are added per
        pair instead of multiplying every pair's concatenated vectors). With an MLP, pairs go through the rest
        of the tower in slices of users, so memory stays bounded by GRID_PAIRS pairs.
        """
        user, item = self._user_side(users), self._item_side(items)
        rows = max(1, GRID_PAIRS // max(len(items), 1)) if self.use_mlp else max(len(users), 1)
        return torch.cat([self._grid(tuple(part if part is None else part[start:start + rows] for part in user), item,
                                     training=False) for start in range(0, max(len(users), 1), rows)])

    def row_tables(self) -> dict[str, str]:
        """state_dict entries with one row per user or per item (their role): what growing a model extends."""
        return {name: f"{side}s" for side in ("user", "item") for name in self._table_names(side)}

    # ---- DeepLearningExamples' state_dict layout ------------------------------------------
    def _table_names(self, side: str) -> list[str]:
        return ([f"mf_{side}_embed.weight"] if self.use_mf else []) + ([f"mlp_{side}_embed.weight"] if self.use_mlp else [])

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if keep_vars:  # asked for the live parameters (exporters map them by this), not a checkpoint
            return
        for side in ("user", "item"):
            table = destination.pop(prefix + f"{side}_embed")
            parts = table.split([width for width in (self.mf_dim, self.mlp_half) if width], dim=1)
            for name, part in zip(self._table_names(side), parts):
                destination[prefix + name] = part.contiguous()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for side in ("user", "item"):
            names = [prefix + name for name in self._table_names(side)]
            if all(name in state_dict for name in names):
                state_dict[prefix + f"{side}_embed"] = torch.cat([state_dict.pop(name) for name in names], dim=1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


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
    """The architecture and table sizes behind a NeuMF state_dict (ours or DeepLearningExamples'). Its shapes
    cannot tell a cosine from a dot product: none records "similarity", which `build` reads as the dot product."""
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

"""Mult-VAE (Liang et al. 2018, "Variational Autoencoders for Collaborative Filtering"), as DLE's VAE-CF.

Input: a user's items as a sparse multi-hot row (a batch is a torch.sparse_csr_tensor, B x items). The
row is L2-normalised, input dropout zeroes items, the encoder (tanh layers) gives the mean and log-variance
of a Gaussian latent, a sample of it (its mean outside training) goes through the mirrored decoder to one
logit per item. The loss is the multinomial negative log-likelihood of the user's items under the softmax
of the logits, plus beta x KL(q(z|x) || N(0, I)) (beta annealed by the training loop), plus lam x |W|^2.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..sparse import row_ids

VARIANTS = ("multvae",)
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class MultVAE(nn.Module):
    """I-600-200-600-I by default: `dims` are the encoder's hidden sizes, the last one the latent size."""

    def __init__(self, n_items: int, dims=(600, 200), dropout: float = 0.5, activation: str = "tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {tuple(ACTIVATIONS)}")
        if not dims:
            raise ValueError("dims needs at least the latent size")
        self.n_items, self.dims, self.dropout, self.activation = n_items, tuple(dims), dropout, activation
        *hidden, latent = dims
        # The first layer's weight is an (items x hidden) table: x @ W is a weighted sum of rows of W.
        first = hidden[0] if hidden else 2 * latent
        self.input_weight = nn.Parameter(torch.empty(n_items, first))
        self.input_bias = nn.Parameter(torch.empty(first))
        widths = [first, *hidden[1:]]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.to_latent = nn.Linear(widths[-1], 2 * latent) if hidden else None
        back = [latent, *reversed(hidden), n_items]
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(back[:-1], back[1:]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights, biases N(0, 0.001) (Liang et al., DLE)."""
        limit = math.sqrt(6.0 / sum(self.input_weight.shape))
        nn.init.uniform_(self.input_weight, -limit, limit)
        nn.init.normal_(self.input_bias, 0.0, 0.001)
        for layer in self._dense_layers():
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def row_tables(self) -> dict[str, str]:
        """state_dict entries with one row per item (their role): the first layer's table and the last layer."""
        last = f"decoder.{len(self.decoder) - 1}"
        return {"input_weight": "items", f"{last}.weight": "items", f"{last}.bias": "items"}

    def _dense_layers(self) -> list:
        return [*self.encoder, *([self.to_latent] if self.to_latent is not None else []), *self.decoder]

    def weights(self):
        """The weight matrices (what --lam regularises; biases are not)."""
        yield self.input_weight
        for layer in self._dense_layers():
            yield layer.weight

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of q(z|x) for a CSR batch x (rows: users, columns: items)."""
        act = ACTIVATIONS[self.activation]
        crow, items, values = x.crow_indices(), x.col_indices(), x.values().float()
        rows = row_ids(x)
        norms = torch.zeros(x.shape[0], device=values.device).index_add_(0, rows, values * values).sqrt()
        weights = values / norms.clamp_min(1e-12)[rows]
        if self.training and self.dropout > 0:
            keep = torch.rand(weights.shape, device=weights.device) >= self.dropout
            weights = weights * keep / (1.0 - self.dropout)
        # x @ W as a weighted bag of W's rows: the same product as a sparse matmul, and faster on CPU
        h = nn.functional.embedding_bag(items, self.input_weight, crow[:-1], mode="sum", per_sample_weights=weights)
        h = h + self.input_bias
        if self.to_latent is not None:
            h = act(h)
            for layer in self.encoder:
                h = act(layer(h))
            h = self.to_latent(h)
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar

    def dense_logits(self, fold_in: torch.Tensor) -> torch.Tensor:
        """The decoder's logits from the encoded mean of dense multi-hot rows: `encode` + `decode` in evaluation,
        written with dense products (tracing and ONNX export take no CSR input), for `serving.export`."""
        act = ACTIVATIONS[self.activation]
        x = fold_in.float()
        x = x / torch.sqrt((x * x).sum(dim=1, keepdim=True)).clamp_min(1e-12)
        h = x @ self.input_weight + self.input_bias
        if self.to_latent is not None:
            h = act(h)
            for layer in self.encoder:
                h = act(layer(h))
            h = self.to_latent(h)
        return self.decode(h[:, :self.dims[-1]])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.activation]
        for layer in self.decoder[:-1]:
            z = act(layer(z))
        return self.decoder[-1](z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits over items, mean, log-variance); z is sampled in training, the mean otherwise."""
        mean, logvar = self.encode(x)
        z = mean
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar.float()).to(mean.dtype)
        return self.decode(z), mean, logvar


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over users of -sum_i x_ui log softmax(logits_u)_i, gathered at the stored entries of CSR x."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs[row_ids(x), x.col_indices()] * x.values().float()
    return -picked.sum() / x.shape[0]


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over users of KL(N(mean, exp(logvar)) || N(0, I))."""
    mean, logvar = mean.float(), logvar.float()
    return (0.5 * (-logvar + logvar.exp() + mean * mean - 1.0)).sum(dim=-1).mean()


def anneal(step: int, total_anneal_steps: int, anneal_cap: float) -> float:
    """The KL weight beta after `step` optimizer updates: linear from 0, capped (Liang et al.)."""
    if total_anneal_steps <= 0:
        return anneal_cap
    return min(anneal_cap, step / total_anneal_steps)


def elbo_loss(net, model: MultVAE, x: torch.Tensor, beta: float, lam: float) -> tuple[torch.Tensor, dict]:
    """The negative ELBO (plus lam x |W|^2) of a batch. `net` runs the forward pass (the model, or its DDP
    wrapper); `model` holds the weights. Returns (loss, detached parts for logging)."""
    logits, mean, logvar = net(x)
    nll = multinomial_nll(logits, x)
    kl = kl_divergence(mean, logvar)
    loss = nll + beta * kl
    if lam > 0:
        loss = loss + lam * sum((w.float() ** 2).sum() for w in model.weights())
    return loss, {"nll": nll.detach(), "kl": kl.detach()}

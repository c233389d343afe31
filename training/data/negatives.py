"""Negative samplers of the pairs layout (`--negative_sampler`): items drawn on the device with the stream's
generator (so a run is seeded), and the log-probability of drawing each item, which the sampled softmax
subtracts from its logits (`losses.sampled_softmax`)."""
from __future__ import annotations

import math

import torch

from contract.errors import UserError

SAMPLERS = ("uniform", "popularity")
POPULARITY_EXPONENT = 0.75  # word2vec's unigram^0.75 (Mikolov et al. 2013): flatter than popularity itself


class UniformSampler:
    """Every item index alike, as DLE's NCF draws its negatives (reserved indices included, as before)."""

    def __init__(self, items: int, device):
        self.items, self.device = items, device
        self.log_q = torch.full((items,), -math.log(items), device=device)

    def draw(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.items, shape, device=self.device, generator=gen)


class PopularitySampler:
    """Items in proportion to their train positives ** exponent (items without any are never drawn), by inverse
    transform: one uniform draw per negative, looked up in the cumulative weights (searchsorted), so any catalogue
    size works on CPU and GPU alike (torch.multinomial stops at 2**24 categories)."""

    def __init__(self, counts: torch.Tensor, exponent: float):
        weights = counts.double().clamp(min=0) ** exponent * (counts > 0)
        total = weights.sum()
        if not total > 0:
            raise UserError("--negative_sampler popularity: no item has a train positive")
        self.cdf = torch.cumsum(weights, 0)
        self.log_q = torch.log(weights / total).float()  # -inf for items never drawn (none is ever a positive)

    def draw(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(shape, generator=gen, device=self.cdf.device, dtype=torch.float64) * self.cdf[-1]
        return torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.cdf) - 1)


def make_sampler(name: str, counts: torch.Tensor, exponent: float = POPULARITY_EXPONENT):
    """The sampler `name` over the items `counts` (train positives per item index, on the device) counts."""
    if name == "uniform":
        return UniformSampler(len(counts), counts.device)
    if name == "popularity":
        return PopularitySampler(counts, exponent)
    raise ValueError(f"unknown negative sampler {name!r}; choose from {SAMPLERS}")

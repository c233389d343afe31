"""Strong non-neural baselines as all-items scorers of the full-ranking protocol (`ranking.ScoreUsers`).

EASE (Steck 2019): B = I - P diag(1/diag P), P = (X'X + lambda I)^-1, diagonal of B zero; a user's scores
are their train row times B. One closed form per lambda; lambda is chosen on validation. The Gram matrix
is items x items floats: where the catalogue's would not fit the memory given to it, EASE runs on the most
popular items and every other item ranks last for it (stated, never silent). TopPop is
`ranking.popularity_scores`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from contract.errors import UserError

from .ranking import ScoreUsers
from .sparse import Lists

LAMBDAS = (10.0, 50.0, 200.0, 500.0, 1000.0, 3000.0)  # Steck's 500 for ml-20m sits inside
MATRICES = 4           # item x item float32 matrices at the peak: Gram, best B, and a Cholesky factor and its inverse
MEMORY_SHARE = 0.5     # of the memory available when EASE starts
GRAM_BATCH = 2**24     # floats of a dense block of user rows while summing X'X


def available_bytes() -> int:
    """Memory the system can give now (Linux), or a conservative 4 GiB where it does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def max_items_for(memory_bytes: int) -> int:
    """The largest item count whose EASE matrices fit in MEMORY_SHARE of `memory_bytes`."""
    return int((MEMORY_SHARE * memory_bytes / (MATRICES * 4)) ** 0.5)


def item_subset(counts: torch.Tensor, first_index: int, max_items: int) -> torch.Tensor:
    """The real items EASE models: all of them, or the `max_items` with most train positives (ties: lower index)."""
    real = torch.arange(first_index, len(counts), device=counts.device)
    if len(real) <= max_items:
        return real
    order = torch.sort(counts[real], descending=True, stable=True).indices[:max_items]
    return torch.sort(real[order]).values


def restrict(x: torch.Tensor, position: torch.Tensor, m: int) -> torch.Tensor:
    """A CSR multi-hot (rows x items) as a COO (rows x m) over the subset; `position` maps item -> column or -1."""
    rows = torch.repeat_interleave(torch.arange(x.shape[0], device=x.device), x.crow_indices().diff())
    cols = position[x.col_indices()]
    keep = cols >= 0
    return torch.sparse_coo_tensor(torch.stack([rows[keep], cols[keep]]), torch.ones(int(keep.sum()), device=x.device),
                                   (x.shape[0], m), check_invariants=False)


def gram(train: Lists, position: torch.Tensor, m: int) -> torch.Tensor:
    """X'X over the subset's columns, summed over blocks of users (a dense block times its sparse transpose)."""
    g = torch.zeros(m, m, dtype=torch.float32, device=train.items.device)
    block = max(1, GRAM_BATCH // max(m, 1))
    n_items = len(position)
    for start in range(0, len(train), block):
        x = restrict(train.rows(start, min(start + block, len(train)), n_items), position, m)
        g += torch.sparse.mm(x.t().coalesce(), x.to_dense())
    return g


def ease_weights(g: torch.Tensor, lam: float) -> torch.Tensor:
    """B of EASE for the Gram matrix g and regularisation lam."""
    a = g.clone()
    a.diagonal().add_(lam)
    factor = torch.linalg.cholesky(a)
    del a  # the peak is four item x item matrices, not five
    p = torch.cholesky_inverse(factor)
    del factor
    b = p.div_(-p.diagonal())  # column j divided by -P_jj
    b.diagonal().zero_()
    return b


@dataclass
class EASE:
    """A fitted EASE: its weights over `items`, and the lambda chosen with the validation figure of each."""

    items: torch.Tensor
    weights: torch.Tensor
    lam: float
    n_items: int
    validation: dict[float, float] = field(default_factory=dict)

    def __post_init__(self):
        self.position = torch.full((self.n_items,), -1, dtype=torch.long, device=self.items.device)
        self.position[self.items] = torch.arange(len(self.items), device=self.items.device)

    def score_users(self, users: torch.Tensor, fold_in: torch.Tensor) -> torch.Tensor:
        """Each user's train row times B; items outside the subset score -inf (never recommended)."""
        sub = torch.sparse.mm(restrict(fold_in, self.position, len(self.items)), self.weights)
        scores = torch.full((fold_in.shape[0], self.n_items), -torch.inf, device=sub.device)
        scores[:, self.items] = sub
        return scores


def fit_ease(train: Lists, counts: torch.Tensor, first_index: int, lambdas, max_items: int | None,
             validate: Callable[[ScoreUsers], float], say: Callable[[str], None]) -> EASE:
    """EASE for each lambda, keeping the one `validate` (a figure to maximise) likes best."""
    n_items = len(counts)
    real = n_items - first_index
    limit = max_items if max_items is not None else max_items_for(available_bytes())
    if limit < 1:
        raise UserError("EASE: no memory left for even one item's weights")
    items = item_subset(counts, first_index, limit)
    if len(items) < real:
        share = float(counts[items].sum() / max(int(counts.sum()), 1))
        say(f"EASE: {real:,} items need {MATRICES * 4 * real**2 / 2**30:.1f} GiB of item x item matrices; it models "
            f"the {len(items):,} most popular ({share:.0%} of train positives) and ranks the others last "
            f"(--ease_max_items to change)")
    position = torch.full((n_items,), -1, dtype=torch.long, device=counts.device)
    position[items] = torch.arange(len(items), device=counts.device)
    g = gram(train, position, len(items))
    best, figures = None, {}
    for lam in lambdas:
        model = EASE(items, ease_weights(g, lam), float(lam), n_items)
        figures[float(lam)] = validate(model.score_users)
        say(f"EASE lambda {lam:g}: validation {figures[float(lam)]:.4f}")
        if best is None or figures[float(lam)] > figures[best.lam]:
            best = model
    best.validation = figures
    if len(figures) > 1 and best.lam in (min(figures), max(figures)):
        say(f"EASE: lambda {best.lam:g} is the edge of --ease_lambdas; a value beyond it may be better")
    return best


def check_lambdas(values) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values or min(values) <= 0 or not all(np.isfinite(values)):
        raise UserError("--ease_lambdas must be positive numbers")
    return values

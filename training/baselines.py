"""Strong non-neural baselines as all-items scorers of the full-ranking protocol (`ranking.ScoreUsers`).

EASE (Steck 2019): B = I - P diag(1/diag P), P = (G + lambda I)^-1 with G = X'X, the diagonal of B zero; a
user's scores are their train row times B. G is factorised once, G = Q diag(e) Q' (a symmetric
eigendecomposition, float32), so every lambda is matrix products, P = Q diag(1/(e + lambda)) Q', never a new
factorisation; lambda is chosen on validation. Per lambda, the cheaper of two exact forms scores the users:
B itself (one items^3 product, for as many users as items or more), or, for fewer users, the factors alone,
x B = x - (x Q) diag(1/(e + lambda)) Q' diag(1/diag P), where no matrix but Q is items x items.

Memory: the items x items float32 matrices at the peak are MATRICES: on the CPU, LAPACK's ssyevr overwrites G
and writes Q beside it with a workspace of a few items (scipy); every later step holds Q and at most one B
(rows formed in blocks, in place). Torch's eigh (a GPU, or no scipy) holds G, Q and syevd's 2 x items^2
workspace. Where the matrices would not fit the memory given to EASE, it runs on the most popular items and
every other item ranks last for it (stated, never silent). `ease_weights` is the closed form by a Cholesky
factor per lambda, the reference the eigen path is tested against. TopPop is `ranking.popularity_scores`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from contract.errors import UserError

from .ranking import ScoreUsers
from .sparse import Lists

LAMBDAS = (10.0, 50.0, 200.0, 500.0, 1000.0, 3000.0)  # Steck's 500 for ml-20m sits inside
# item x item float32 matrices at the peak: G and Q (ssyevr, in place, scipy on the CPU), or G, Q and syevd's
# two of workspace (torch.linalg.eigh); Q and one B at most after the factorisation
MATRICES = {"ssyevr": 2, "torch.linalg.eigh": 4}
MEMORY_SHARE = 0.75    # of the memory available when EASE starts (the peak above is exact, not a guess)
GRAM_BATCH = 2**24     # floats of a dense block (user rows while summing X'X, rows of B, users' scores)
SYMMETRIC_BLOCK = 256  # rows of B formed at a time at least


def solver(device: torch.device) -> str:
    """The eigensolver EASE uses on `device`: LAPACK's ssyevr through scipy on the CPU, else torch's."""
    if torch.device(device).type == "cpu":
        try:
            import scipy.linalg  # noqa: F401  (NVTabular's dependency, so always present where the ETL runs)
            return "ssyevr"
        except ImportError:
            pass
    return "torch.linalg.eigh"


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory the device can give now (a GPU's free memory; the system's, on Linux), or a conservative 4 GiB
    where it does not say."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def max_items_for(memory_bytes: int, matrices: int = MATRICES["ssyevr"]) -> int:
    """The largest item count whose EASE matrices (`matrices` of items x items float32) fit in MEMORY_SHARE of
    `memory_bytes`."""
    return int((MEMORY_SHARE * memory_bytes / (matrices * 4)) ** 0.5)


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
    """X'X over the subset's columns, summed in place over blocks of users (a block's sparse transpose times the
    dense block): no second items x items matrix."""
    g = torch.zeros(m, m, dtype=torch.float32, device=train.items.device)
    block = max(1, GRAM_BATCH // max(m, 1))
    n_items = len(position)
    for start in range(0, len(train), block):
        x = restrict(train.rows(start, min(start + block, len(train)), n_items), position, m).coalesce()
        g.addmm_(x.t().coalesce().to_sparse_csr(), x.to_dense())
    return g


def ease_weights(g: torch.Tensor, lam: float) -> torch.Tensor:
    """B of EASE for the Gram matrix g and regularisation lam by a Cholesky factor (the reference; compare
    factorises once, `Spectrum`)."""
    a = g.clone()
    a.diagonal().add_(lam)
    factor = torch.linalg.cholesky(a)
    del a
    p = torch.cholesky_inverse(factor)
    del factor
    b = p.div_(-p.diagonal())  # column j divided by -P_jj
    b.diagonal().zero_()
    return b


@dataclass
class Spectrum:
    """G = Q diag(values) Q': `vectors` holds Q' (row k is the k-th eigenvector), `values` clamped at 0 (G is
    positive semi-definite; float32 round-off can leave -1e-5)."""

    values: torch.Tensor
    vectors: torch.Tensor
    solver: str
    seconds: float

    def __len__(self) -> int:
        return len(self.values)

    def _block(self) -> int:
        return max(1, GRAM_BATCH // max(len(self), 1))

    def inverse_values(self, lam: float) -> torch.Tensor:
        return 1.0 / (self.values + lam)

    def inverse_diagonal(self, lam: float) -> torch.Tensor:
        """diag P = sum_k Q_ik^2 / (e_k + lambda), over blocks of eigenvectors."""
        w, qt = self.inverse_values(lam), self.vectors
        diag = torch.zeros(len(self), dtype=torch.float32, device=qt.device)
        for start in range(0, len(self), self._block()):
            end = min(start + self._block(), len(self))
            diag.add_(w[start:end] @ qt[start:end].square())
        return diag

    def weights(self, lam: float) -> torch.Tensor:
        """B for lambda, its rows formed in blocks straight into the one new items x items matrix."""
        w, qt, n = self.inverse_values(lam), self.vectors, len(self)
        b = torch.empty_like(qt)
        step = min(self._block(), max(SYMMETRIC_BLOCK, -(-n // 16)))  # 16 row blocks: 53% of a full product
        blocks = [(start, min(start + step, n)) for start in range(0, n, step)]
        for start, end in blocks:  # P = Q diag(w) Q' is symmetric: its lower triangle, half a full product
            b[start:end, :end] = torch.mm(qt[:, start:end].t() * w, qt[:, :end])
        for start, end in blocks:  # and the upper one, mirrored
            b[start:end, end:] = b[end:, start:end].t()
        b.div_(-b.diagonal().clone())
        b.diagonal().zero_()
        return b

    def scores(self, x: torch.Tensor, lam: float, diagonal: torch.Tensor) -> torch.Tensor:
        """x B without B: x - (x Q) diag(w) Q' diag(1/diag P), for a dense block of users' rows x."""
        xq = torch.mm(x, self.vectors.t()).mul_(self.inverse_values(lam))
        return torch.mm(xq, self.vectors).div_(-diagonal).add_(x)


def factorise(g: torch.Tensor, how: str) -> Spectrum:
    """The eigendecomposition of the Gram matrix g, which it consumes (ssyevr overwrites it)."""
    begin = time.perf_counter()
    if how == "ssyevr":
        import scipy.linalg

        # g is symmetric, so its transpose is the Fortran-ordered array LAPACK overwrites without a copy
        values, vectors = scipy.linalg.eigh(g.numpy().T, overwrite_a=True, check_finite=False, driver="evr")
        del g
        values, qt = torch.from_numpy(values), torch.from_numpy(np.ascontiguousarray(vectors.T))  # Q' (no copy)
    else:
        values, vectors = torch.linalg.eigh(g)
        del g
        qt = vectors.mT.contiguous()
        del vectors
    return Spectrum(values.clamp_min_(0.0), qt, how, time.perf_counter() - begin)


@dataclass
class EASE:
    """A fitted EASE over `items`: its weights B, or the Gram matrix's `spectrum` that scores without them; the
    lambda chosen with the validation figure of each."""

    items: torch.Tensor
    weights: torch.Tensor | None
    lam: float
    n_items: int
    validation: dict[float, float] = field(default_factory=dict)
    spectrum: Spectrum | None = None
    about: dict = field(default_factory=dict)  # how it was fitted: solver, seconds, the item subset if any

    def __post_init__(self):
        self.position = torch.full((self.n_items,), -1, dtype=torch.long, device=self.items.device)
        self.position[self.items] = torch.arange(len(self.items), device=self.items.device)
        if self.weights is None:
            self.diagonal = self.spectrum.inverse_diagonal(self.lam)

    def score_users(self, users: torch.Tensor, fold_in: torch.Tensor) -> torch.Tensor:
        """Each user's train row times B; items outside the subset score -inf (never recommended)."""
        x = restrict(fold_in, self.position, len(self.items))
        if self.weights is not None:
            sub = torch.sparse.mm(x, self.weights)
        else:
            sub = self.spectrum.scores(x.to_dense(), self.lam, self.diagonal)
        scores = torch.full((fold_in.shape[0], self.n_items), -torch.inf, device=sub.device)
        scores[:, self.items] = sub
        return scores


def fit_ease(train: Lists, counts: torch.Tensor, first_index: int, lambdas, max_items: int | None,
             validate: Callable[[ScoreUsers], float], say: Callable[[str], None],
             users: int | None = None) -> EASE:
    """EASE for each lambda from one factorisation, keeping the one `validate` (a figure to maximise) likes best;
    `users`: how many users one validation scores (B is formed where that is cheaper than scoring from the
    factors: as many users as items or more; unknown: B)."""
    n_items, device = len(counts), counts.device
    real = n_items - first_index
    how = solver(device)
    limit = max_items if max_items is not None else max_items_for(available_bytes(device), MATRICES[how])
    if limit < 1:
        raise UserError("EASE: no memory left for even one item's weights")
    items = item_subset(counts, first_index, limit)
    m, about = len(items), {"items": len(items), "catalogue_items": real, "solver": how}
    if m < real:
        share = float(counts[items].sum() / max(int(counts.sum()), 1))
        about["item_subset"] = (f"the {m:,} most popular of {real:,} items ({share:.0%} of train positives); the "
                                "others rank last")
        say(f"EASE: {real:,} items need {MATRICES[how] * 4 * real**2 / 2**30:.1f} GiB of item x item matrices; it "
            f"models the {m:,} most popular ({share:.0%} of train positives) and ranks the others last "
            f"(--ease_max_items to change)")
    position = torch.full((n_items,), -1, dtype=torch.long, device=device)
    position[items] = torch.arange(m, device=device)
    spectrum = factorise(gram(train, position, m), how)
    dense = users is None or 2 * users >= m
    say(f"EASE: one eigendecomposition of the {m:,} x {m:,} Gram matrix ({how}) in {spectrum.seconds:.1f}s; each "
        f"lambda is then matrix products" + (", B formed" if dense else f", scored from the factors ({users:,} users "
                                             f"< {m:,} items)"))
    best, best_lam, figures = None, None, {}
    for lam in lambdas:
        lam, begin = float(lam), time.perf_counter()
        if dense:
            best = None  # one B at a time beside Q: the best is formed again at the end unless it is the last
        model = EASE(items, spectrum.weights(lam), lam, n_items) if dense else \
            EASE(items, None, lam, n_items, spectrum=spectrum)
        figures[lam] = validate(model.score_users)
        say(f"EASE lambda {lam:g}: validation {figures[lam]:.4f} ({time.perf_counter() - begin:.1f}s)")
        if best_lam is None or figures[lam] > figures[best_lam]:
            best, best_lam = model, lam
        del model
    if best is None:
        best = EASE(items, spectrum.weights(best_lam), best_lam, n_items)
    best.validation = figures
    best.about = {**about, "factorise_seconds": spectrum.seconds, "scored_with": "B" if dense else "factors"}
    if len(figures) > 1 and best.lam in (min(figures), max(figures)):
        say(f"EASE: lambda {best.lam:g} is the edge of --ease_lambdas; a value beyond it may be better")
    return best


def check_lambdas(values) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values or min(values) <= 0 or not all(np.isfinite(values)):
        raise UserError("--ease_lambdas must be positive numbers")
    return values

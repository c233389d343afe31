"""Ragged per-user item lists on the device and their CSR form: what the lists stream, the Mult-VAE
model, full-catalogue ranking and recommend share. A leaf module: torch only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def row_ids(x: torch.Tensor) -> torch.Tensor:
    """The row of every stored value of a CSR tensor."""
    crow = x.crow_indices()
    return torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())


def multi_hot(offsets: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """A (rows x n_items) CSR tensor of ones from ragged lists (offsets, items); items sorted within each row."""
    rows = torch.repeat_interleave(torch.arange(len(offsets) - 1, device=items.device), offsets.diff())
    order = torch.argsort(rows * n_items + items)
    return torch.sparse_csr_tensor(offsets.long(), items[order].long(), torch.ones(len(items), device=items.device),
                                   size=(len(offsets) - 1, n_items), check_invariants=False)


@dataclass
class Lists:
    """One ragged list of item indices per row: row r holds items[offsets[r]:offsets[r + 1]]."""

    offsets: torch.Tensor  # (rows + 1,) int64
    items: torch.Tensor    # (offsets[-1],) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, start: int, end: int, n_items: int) -> torch.Tensor:
        """Rows start..end-1 as a (rows x n_items) CSR multi-hot tensor."""
        lo, hi = int(self.offsets[start]), int(self.offsets[end])
        return multi_hot(self.offsets[start:end + 1] - lo, self.items[lo:hi], n_items)

    @classmethod
    def from_numpy(cls, offsets: np.ndarray, items: np.ndarray, device) -> Lists:
        return cls(torch.from_numpy(np.asarray(offsets, np.int64)).to(device),
                   torch.from_numpy(np.asarray(items, np.int64)).to(device))

    @classmethod
    def from_keys(cls, keys: np.ndarray, users: np.ndarray, n_items: int, device) -> Lists:
        """Per-user lists for `users` (in that order) from sorted unique user * n_items + item keys."""
        lo = np.searchsorted(keys, users * n_items)
        hi = np.searchsorted(keys, (users + 1) * n_items)
        lengths = hi - lo
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        items = keys[starts + np.arange(lengths.sum())] % n_items if len(users) else np.zeros(0, np.int64)
        return cls.from_numpy(np.concatenate([[0], np.cumsum(lengths)]), items, device)

    def take(self, rows: np.ndarray) -> Lists:
        """The lists of `rows`, in that order (a host-side gather)."""
        offsets, items = self.offsets.cpu().numpy(), self.items.cpu().numpy()
        parts = [items[offsets[r]:offsets[r + 1]] for r in rows]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return Lists.from_numpy(np.concatenate([[0], np.cumsum(lengths)]), flat, self.offsets.device)

"""What a Mult-VAE must fold in, read from a lists-layout DATA_DIR with pandas alone (not through
training.recommend), and the model's logits for it: the independent side of the serving tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..helpers import vocabulary

POSITIVE_COLUMNS = {"train": ("item_id",), "validation": ("fold_in", "target"), "test": ("fold_in", "target")}


def positives(data: Path, mappings: dict = POSITIVE_COLUMNS) -> dict[int, set[int]]:
    """Encoded user -> encoded items: every positive of train and of the held-out users' two lists."""
    out: dict[int, set[int]] = {}
    for mapping, columns in mappings.items():
        frame = pd.read_parquet(data / mapping)
        for _, row in frame.iterrows():
            for column in columns:
                out.setdefault(int(row["user_id"]), set()).update(int(i) for i in row[column])
    return out


def everything(data: Path) -> dict[int, set[int]]:
    """Encoded user -> every item they have: positives and the items below the positive rule (`known`)."""
    out = positives(data)
    for user, items in positives(data, {"known": ("item_id",)}).items():
        out.setdefault(user, set()).update(items)
    return out


def users_by_history(data: Path) -> tuple[list[str], list[str], list[str]]:
    """Raw ids of (train users, held-out test users, users the workflow knows without any positive)."""
    users = vocabulary(data / "workflow", "user_id")
    have = positives(data)
    train = set(pd.read_parquet(data / "train")["user_id"])
    test = set(pd.read_parquet(data / "test")["user_id"])
    raw = lambda codes: [str(users.loc[c]) for c in sorted(codes)]  # noqa: E731
    return raw(train), raw(test), raw(set(users.index) - set(have))


def fold_in_logits(model: torch.nn.Module, histories: list[set[int]], n_items: int) -> np.ndarray:
    """The model's logits (users x items) for each history, as a dense multi-hot turned CSR."""
    dense = torch.zeros(len(histories), n_items)
    for row, items in enumerate(histories):
        dense[row, sorted(items)] = 1.0
    with torch.no_grad():
        return model.eval()(dense.to_sparse_csr())[0].float().numpy()

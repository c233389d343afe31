"""Growing a trained model onto data whose grown workflow added users and items (`--init_from` on grown data).

Written once for every family: a model names the state_dict entries with one row per user or per item
(`row_tables()`); every other entry must match exactly. The old rows are copied unchanged (the grown
workflow keeps every old index), the new rows are a fresh model's, initialised as for a new run.
"""
from __future__ import annotations

import torch

from contract.errors import UserError


def grow_state(old: dict, fresh: dict, row_tables: dict, where) -> tuple[dict, dict]:
    """(`fresh` with `old`'s rows and weights copied in, rows added per role). `row_tables`: entry -> role."""
    if set(old) != set(fresh):
        raise UserError(f"{where}: its weights {sorted(set(old) ^ set(fresh))} do not match this model's")
    grown, added = {}, {}
    for name, value in fresh.items():
        before = old[name]
        rows = name in row_tables
        if (before.shape[1:] != value.shape[1:] or before.shape[0] > value.shape[0]) if rows else \
                before.shape != value.shape:
            raise UserError(f"{where}: {name} has shape {tuple(before.shape)}, which does not fit this model's "
                            f"{tuple(value.shape)}")
        if rows:
            value = value.clone()
            value[:before.shape[0]] = before
            added[row_tables[name]] = value.shape[0] - before.shape[0]
        else:
            value = before
        grown[name] = value
    return grown, added


def grow_model(model: torch.nn.Module, old: dict, where) -> dict:
    """Load `old` into `model` (freshly initialised, with the grown tables); returns the rows added per role."""
    state, added = grow_state(old, model.state_dict(), model.row_tables(), where)
    model.load_state_dict(state)
    return added

"""Checkpoints: the best model (model.pth) and the last training state (last.pth), written atomically."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from contract.atomic import atomic_file
from contract.errors import UserError

BEST = "model.pth"
LAST = "last.pth"


def save(path: Path, payload: dict) -> None:
    with atomic_file(Path(path)) as tmp:
        torch.save(payload, tmp)


def load(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(f"checkpoint {path} is corrupt or not a checkpoint ({type(exc).__name__})")
    if not isinstance(payload, dict) or "model" not in payload or "meta" not in payload:
        raise UserError(f"checkpoint {path} is not one of ours (no model/meta entries)")
    return payload


def check_fits(payload: dict, path, table_sizes: dict, arch: dict | None = None) -> None:
    """The checkpoint's tables and layers must match the FeatureSpec (and the requested model)."""
    meta = payload["meta"]
    if meta["cardinalities"] != table_sizes:
        raise UserError(
            f"checkpoint {path} was trained with user/item cardinalities "
            f"{meta['cardinalities']['users']}/{meta['cardinalities']['items']} but the FeatureSpec has "
            f"{table_sizes['users']}/{table_sizes['items']}: it belongs to another dataset"
        )
    if arch is not None and meta["architecture"] != arch:
        raise UserError(f"checkpoint {path} has architecture {meta['architecture']}, not the requested {arch}")

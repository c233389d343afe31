"""Checkpoint files: the best model (model.pth) and the last training state (last.pth), written atomically,
read back, and the checks of their tables against data. `saved.py` is the one loader built on them."""
from __future__ import annotations

import io
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
        tmp.write_bytes(serialized(torch.save, payload))


def serialized(save, obj, *args, **kwargs) -> bytes:
    """`save(obj, file, ...)` into memory. Written to a path, torch's C++ writers end a full disk in a
    RuntimeError (or, in the exporters, an abort); Python's own write says ENOSPC, which is one line."""
    buffer = io.BytesIO()
    save(obj, buffer, *args, **kwargs)
    return buffer.getvalue()


def read(path) -> dict:
    """{"model": state_dict, "meta": meta} of one of ours, or of a bare state_dict (meta None: what the
    state_dict's shapes say is for the registry to read, `saved.load`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(f"checkpoint {path} is corrupt or not a checkpoint ({type(exc).__name__})")
    if isinstance(payload, dict) and "model" in payload and "meta" in payload:
        return payload
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        # saved from a DDP wrapper: its keys carry the wrapper's prefix
        return {"model": {key.removeprefix("module."): value for key, value in payload.items()}, "meta": None}
    raise UserError(f"checkpoint {path} is neither one of ours (model/meta entries) nor a model's state_dict")


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


def check_extends(payload: dict, path, spec) -> None:
    """A checkpoint to start from must be of the data's workflow or of one it extends (`etl prepare --grow`).

    Checkpoints that record no workflow (older ones, DLE's state_dicts) and hand-made data are matched on
    their table sizes."""
    meta, sizes = payload["meta"], spec.table_sizes
    theirs, ours = meta.get("workflow_id"), spec.workflow_id
    ancestors = spec.encoding.get("extends") or []
    known = theirs is not None and ours is not None
    if (theirs == ours) if known else (meta["cardinalities"] == sizes or not ancestors):
        check_fits(payload, path, sizes)  # one workflow (or nothing tells): the tables must match
        return
    found = [a for a in ancestors if (a["workflow_id"] == theirs if known else a["cardinalities"] == meta["cardinalities"])]
    if not found or found[0]["cardinalities"] != meta["cardinalities"]:
        raise UserError(f"checkpoint {path} was trained on data of workflow {theirs} (user/item tables "
                        f"{meta['cardinalities']['users']}/{meta['cardinalities']['items']}), which this data's "
                        f"workflow {ours} does not extend: prepare the data with `etl prepare --workflow "
                        "THAT_WORKFLOW --grow`, or train from scratch")

"""python -m training.vae recommend: top-K raw item ids per raw user id from a Mult-VAE checkpoint.

A user's history is folded in: every positive they have in any `--data` folder (train lists, held-out
fold-in and target lists; also train/validation/test positives of pairs-layout data encoded by the same
workflow) is the model's input, and everything they have (those positives and the known items rated below
the positive rule) is excluded from their list, as are items no training user has. Raw ids are encoded
with the saved workflow's vocabularies. Users the workflow has never seen, or seen without any positive
in the given data, get the most popular items, flagged source=popularity.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from contract.chunks import read_parquet_lists
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from contract.vocabulary import read_vocabulary, vocabulary_fingerprint

from . import checkpoint
from .data.lists import checked_item_counts, multi_hot
from .models import build_list_model
from .ranking import exclude
from .recommend import recommendation_rows, run_cli
from .runtime import start_runtime


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.vae recommend", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth of python -m training.vae")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="DATA_DIR [MORE_DATA_DIR ...]: the first (lists layout) sizes the model; every folder's "
                        "interactions are the users' history (all must be encoded by one workflow)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded the data "
                                                  "(default: the one its FeatureSpec records)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated raw user ids")
    who.add_argument("--all-users", action="store_true")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--output", type=Path, required=True, help=".csv or .parquet")
    p.add_argument("--batch_users", type=int, default=1024, help="users scored per forward pass")
    return p


# As python -m training.recommend: score = the model's logit (source=model), train_count = how many
# training users have the item (source=popularity).
COLUMNS = ["user", "rank", "item", "score", "train_count", "source"]


def history_specs(folders: list[Path]) -> list[FeatureSpec]:
    """The FeatureSpecs of every --data folder, checked to share one encoding."""
    specs = [FeatureSpec.from_yaml(folder) for folder in folders]
    for folder, spec in zip(folders[1:], specs[1:]):
        if spec.workflow_id != specs[0].workflow_id or spec.item_cardinality != specs[0].item_cardinality:
            raise UserError(f"--data {folder} was encoded by another workflow than {folders[0]}: "
                            "its indices name other users and items, so it cannot serve as their history")
    return specs


def vocabularies(spec: FeatureSpec, workflow_dir: Path | None) -> tuple[pd.Series, pd.Series]:
    """Raw user and item ids by encoded index, from the workflow that encoded `spec`'s data (checked)."""
    workflow_dir = workflow_dir or spec.workflow_dir
    if workflow_dir is None:
        raise UserError(f"{spec.base_directory}: its FeatureSpec records no workflow; pass --workflow")
    files = [spec.vocabulary_file(workflow_dir, f) for f in (spec.user_feature, spec.item_feature)]
    users, items = (read_vocabulary(f, name) for f, name in zip(files, (spec.user_feature, spec.item_feature)))
    if spec.workflow_id and vocabulary_fingerprint(files) != spec.workflow_id:
        raise UserError(f"workflow {workflow_dir} did not encode {spec.base_directory} (its vocabularies differ "
                        "from the ones recorded in the FeatureSpec): they do not belong together")
    return users, items


def encode_users(raw_ids: list[str], vocab: pd.Series) -> np.ndarray:
    """Encoded index per raw id, -1 where the workflow has never seen it."""
    values = raw_ids
    if np.issubdtype(vocab.dtype, np.integer):
        try:
            values = [int(v) for v in raw_ids]
        except ValueError as exc:
            raise UserError(f"--users: {exc}; this workflow's user ids are integers")
    positions = pd.Index(vocab.to_numpy()).get_indexer(values)
    return np.where(positions >= 0, vocab.index.to_numpy()[positions], -1)


def _pairs(spec: FeatureSpec, mapping: str, positive: bool):
    """(users, items) of one mapping, as flat pairs; `positive` keeps label-1 rows of the pairs layout."""
    if spec.is_lists:
        features = [spec.fold_in_feature, spec.target_feature] if mapping in ("validation", "test") else [spec.item_feature]
        users, items = [], []
        for chunk in spec.chunks(mapping):
            for path in chunk["files"]:
                data = read_parquet_lists(path, [spec.user_feature, *features])
                for name in features:
                    offsets, values = data[name]
                    users.append(np.repeat(data[spec.user_feature], np.diff(offsets)))
                    items.append(values)
        return np.concatenate(users), np.concatenate(items)
    frame = spec.read(mapping)
    if positive:
        frame = frame[frame[spec.label_feature] == 1]
    return frame[spec.user_feature].to_numpy(np.int64), frame[spec.item_feature].to_numpy(np.int64)


def histories(specs: list[FeatureSpec], users: np.ndarray):
    """Sorted unique user * items + item keys of the users' positives, and of everything they have."""
    n_items = specs[0].item_cardinality
    positive, everything = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for spec in specs:
        for mapping in spec.source_spec:
            u, i = _pairs(spec, mapping, positive=mapping != "known")
            keys = u[np.isin(u, users)] * n_items + i[np.isin(u, users)]
            everything.append(keys)
            if mapping != "known":
                positive.append(keys)
    return np.unique(np.concatenate(positive)), np.unique(np.concatenate(everything))


def _lists(keys: np.ndarray, users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (offsets, items) for `users` (in that order) from sorted keys."""
    lo = np.searchsorted(keys, users * n_items)
    hi = np.searchsorted(keys, (users + 1) * n_items)
    items = np.concatenate([keys[a:b] % n_items for a, b in zip(lo, hi)]) if len(users) else np.zeros(0, np.int64)
    return np.concatenate([[0], np.cumsum(hi - lo)]), items


@torch.no_grad()
def score_batch(model, users, positive, everything, n_items, allowed, k, device):
    """Fold in each user's positives, exclude everything they have, top-k."""
    offsets, items = _lists(positive, users, n_items)
    x = multi_hot(torch.from_numpy(offsets).to(device), torch.from_numpy(items).to(device), n_items)
    scores = model(x)[0].float()
    offsets, items = _lists(everything, users, n_items)
    seen = multi_hot(torch.from_numpy(offsets).to(device), torch.from_numpy(items).to(device), n_items)
    return torch.topk(exclude(scores, seen, allowed), min(k, n_items), dim=1)


def recommend(args) -> pd.DataFrame:
    specs = history_specs(args.data)
    spec = specs[0]
    if not spec.is_lists:
        raise UserError(f"--data {args.data[0]}: the first folder must hold the lists layout the model was trained on "
                        "(`etl prepare --split users`)")
    payload = checkpoint.load(args.checkpoint)
    checkpoint.check_fits(payload, args.checkpoint, spec.table_sizes)
    model_arch = payload["meta"]["architecture"]
    user_vocab, item_vocab = vocabularies(spec, args.workflow)
    n_items = spec.item_cardinality
    if not 1 <= args.topk <= len(item_vocab):
        raise UserError(f"--topk {args.topk} must be between 1 and the catalogue size ({len(item_vocab)} items)")
    raw_items = np.empty(n_items, dtype=object)
    raw_items[item_vocab.index.to_numpy()] = item_vocab.to_numpy()
    if args.all_users:  # in the order of the raw ids, not of the vocabulary's frequency order
        by_raw_id = user_vocab.sort_values(kind="stable")
        raw_users, encoded = [str(u) for u in by_raw_id.to_numpy()], by_raw_id.index.to_numpy()
    else:
        raw_users = [u.strip() for u in args.users.split(",") if u.strip()]
        encoded = encode_users(raw_users, user_vocab)
    raw_users = np.asarray(raw_users, dtype=object)
    device = start_runtime().device
    model = build_list_model(model_arch, spec.table_sizes).to(device).eval()
    model.load_state_dict(payload["model"])
    counts = checked_item_counts(spec)
    allowed = torch.from_numpy(counts > 0).to(device)
    allowed[:spec.first_index] = False
    positive, everything = histories(specs, encoded[encoded >= 0])
    has_history = np.isin(encoded, positive // n_items) & (encoded >= 0)

    frames = []
    known = np.flatnonzero(has_history)
    for start in tqdm(range(0, len(known), args.batch_users), desc="recommend", unit="batch", file=sys.stderr,
                      disable=not sys.stderr.isatty()):
        rows = known[start:start + args.batch_users]
        scores, items = score_batch(model, encoded[rows], positive, everything, n_items, allowed, args.topk, device)
        frames.append(recommendation_rows(raw_users[rows], items.cpu().numpy(), scores.cpu().numpy(), raw_items, "model"))
    fallback = np.flatnonzero(~has_history)
    if len(fallback):
        popularity = np.where(allowed.cpu().numpy(), counts, -np.inf).astype(np.float64)
        best = np.argsort(-popularity, kind="stable")[: args.topk]
        frame = recommendation_rows(raw_users[fallback], np.tile(best, (len(fallback), 1)),
                                    np.tile(popularity[best], (len(fallback), 1)), raw_items, "popularity")
        frames.append(frame.rename(columns={"score": "train_count"}))
        unseen = int((encoded[fallback] < 0).sum())
        names = ", ".join(map(str, raw_users[fallback][:5])) + ("..." if len(fallback) > 5 else "")
        print(f"note: {len(fallback)} user id(s) ({names}) got the most popular items (source=popularity): "
              f"{unseen} unknown to the workflow, {len(fallback) - unseen} without positives in --data", file=sys.stderr)
    frame = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    short = frame[frame["source"] == "model"].groupby("user", sort=False).size()
    short = short[short < args.topk]
    if len(short):
        print(f"note: {len(short)} user(s) have fewer than {args.topk} items they do not have: their lists are shorter",
              file=sys.stderr)
    return frame


def main(argv=None) -> int:
    return run_cli(parser().parse_args(argv), recommend)


if __name__ == "__main__":
    sys.exit(main())

"""python -m training.recommend: top-K raw item ids per raw user id from a trained checkpoint.

Items the user already has are excluded: positives (train and the test positive) and the
interactions below the positive rule ("known") of every `--data` folder given, e.g. the newer
data a model was fine-tuned on and the older data it was first trained on. Users the workflow
has never seen get the most popular items, flagged source=popularity.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from contract.atomic import atomic_file
from contract.errors import UserError, print_error
from contract.feature_spec import FeatureSpec
from contract.vocabulary import read_vocabulary, vocabulary_fingerprint

from . import checkpoint
from .data.popularity import checked_item_counts
from .models import build_model
from .runtime import start_runtime


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.recommend", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="DATA_DIR [OLDER_DATA_DIR ...]: the first one's FeatureSpec sizes the model; items seen in "
                        "any of them are excluded (all must be encoded by one workflow)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded the data "
                                                  "(default: the one its FeatureSpec records)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated raw user ids")
    who.add_argument("--all-users", action="store_true")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--output", type=Path, required=True, help=".csv or .parquet")
    p.add_argument("--batch_users", type=int, default=256, help="users scored per forward pass")
    return p


def seen_keys(specs: list[FeatureSpec]) -> np.ndarray:
    """Sorted user * items + item keys of everything the users have: positives and known pairs."""
    keys = []
    for spec in specs:
        for mapping in ("train", "test", "validation", "known"):
            if mapping in spec.source_spec:
                frame = spec.read(mapping)
                if mapping != "known":  # test series hold sampled negatives too
                    frame = frame[frame[spec.label_feature] == 1]
                keys.append(frame[spec.user_feature].to_numpy(np.int64) * spec.item_cardinality
                            + frame[spec.item_feature].to_numpy(np.int64))
    return np.unique(np.concatenate(keys))


def history_specs(folders: list[Path]) -> list[FeatureSpec]:
    """The FeatureSpecs of every --data folder, checked to share one encoding."""
    specs = [FeatureSpec.from_yaml(folder) for folder in folders]
    first = specs[0]
    for folder, spec in zip(folders[1:], specs[1:]):
        if spec.workflow_id != first.workflow_id or spec.table_sizes != first.table_sizes:
            raise UserError(f"--data {folder} was encoded by another workflow than {folders[0]}: "
                            "its indices name other users and items, so it cannot serve as their history")
    return specs


def workflow_of(spec: FeatureSpec, given: Path | None) -> Path:
    if given is not None:
        return given
    if spec.workflow_dir is None:
        raise UserError(f"{spec.base_directory}: its FeatureSpec records no workflow; pass --workflow")
    return spec.workflow_dir


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


@torch.no_grad()
def top_items(model, users: torch.Tensor, n_items: int, first_index: int, seen: np.ndarray, k: int) -> tuple:
    """Scores of every item for a batch of users, seen and reserved items masked, then top-k."""
    items = torch.arange(n_items, device=users.device)
    scores = model(users.repeat_interleave(n_items), items.repeat(len(users))).view(len(users), n_items).float()
    scores[:, :first_index] = -torch.inf
    keys = users.cpu().numpy()[:, None] * n_items + np.arange(n_items)[None, :]
    lo = np.searchsorted(seen, keys[:, 0])
    hi = np.searchsorted(seen, keys[:, -1], side="right")
    for row, (a, b) in enumerate(zip(lo, hi)):
        scores[row, torch.from_numpy(seen[a:b] - keys[row, 0])] = -torch.inf
    return torch.topk(scores, k, dim=1)


def load_vocabularies(spec: FeatureSpec, workflow_dir: Path) -> tuple[pd.Series, pd.Series]:
    """The user and item vocabularies of the workflow that encoded `spec`'s data (checked)."""
    files = [spec.vocabulary_file(workflow_dir, f) for f in (spec.user_feature, spec.item_feature)]
    user_vocab, item_vocab = (read_vocabulary(f, name) for f, name in zip(files, (spec.user_feature, spec.item_feature)))
    if spec.workflow_id and vocabulary_fingerprint(files) != spec.workflow_id:
        raise UserError(f"workflow {workflow_dir} did not encode {spec.base_directory} (its vocabularies differ "
                        "from the ones recorded in the FeatureSpec): they do not belong together")
    if len(item_vocab) + spec.first_index != spec.item_cardinality:
        raise UserError(f"workflow {workflow_dir} has {len(item_vocab)} items but the data has "
                        f"{spec.item_cardinality - spec.first_index}: they do not belong together")
    return user_vocab, item_vocab


def recommend(args) -> pd.DataFrame:
    specs = history_specs(args.data)
    spec = specs[0]
    payload = checkpoint.load(args.checkpoint)
    checkpoint.check_fits(payload, args.checkpoint, spec.table_sizes)
    user_vocab, item_vocab = load_vocabularies(spec, workflow_of(spec, args.workflow))
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
    device = start_runtime().device
    model = build_model(payload["meta"]["architecture"], spec.table_sizes).to(device).eval()
    model.load_state_dict(payload["model"])
    seen = seen_keys(specs)

    frames = []
    known = np.flatnonzero(encoded >= 0)
    for start in tqdm(range(0, len(known), args.batch_users), desc="recommend", unit="batch", file=sys.stderr,
                      disable=not sys.stderr.isatty()):
        rows = known[start:start + args.batch_users]
        scores, items = top_items(model, torch.from_numpy(encoded[rows]).to(device), n_items, spec.first_index, seen,
                                  args.topk)
        frames.append(_rows(np.asarray(raw_users, dtype=object)[rows], items.cpu().numpy(), scores.cpu().numpy(),
                            raw_items, "model"))
    unknown = np.flatnonzero(encoded < 0)
    if len(unknown):
        popularity = checked_item_counts(spec).astype(np.float64)
        popularity[:spec.first_index] = -np.inf
        best = np.argsort(-popularity, kind="stable")[: args.topk]
        frames.append(_rows(np.asarray(raw_users, dtype=object)[unknown], np.tile(best, (len(unknown), 1)),
                            np.tile(popularity[best], (len(unknown), 1)), raw_items, "popularity"))
        frames[-1] = frames[-1].rename(columns={"score": "train_count"})
        print(f"note: {len(unknown)} unknown user id(s) ({', '.join(map(str, np.asarray(raw_users)[unknown][:5]))}"
              f"{'...' if len(unknown) > 5 else ''}) got the most popular items (source=popularity)", file=sys.stderr)
    frame = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    short = frame[frame["source"] == "model"].groupby("user", sort=False).size()
    short = short[short < args.topk]
    if len(short):
        print(f"note: {len(short)} user(s) have fewer than {args.topk} items they have not seen "
              f"({', '.join(map(str, short.index[:5]))}{'...' if len(short) > 5 else ''}): their lists are shorter",
              file=sys.stderr)
    return frame


# score: the model's logit (source=model); train_count: the item's train interactions (source=popularity).
COLUMNS = ["user", "rank", "item", "score", "train_count", "source"]


def _rows(users, items, scores, raw_items, source) -> pd.DataFrame:
    """One row per (user, rank); items masked as seen (score -inf) are dropped, never padded in."""
    k = items.shape[1]
    frame = pd.DataFrame({
        "user": np.repeat(users, k), "rank": np.tile(np.arange(1, k + 1), len(users)),
        "item": raw_items[items.ravel()], "score": scores.ravel(), "source": source,
    })
    return frame[np.isfinite(frame["score"])]


def write(frame: pd.DataFrame, output: Path) -> None:
    with atomic_file(output) as tmp:
        if output.suffix == ".parquet":
            frame.astype({"user": str, "item": str}).to_parquet(tmp, index=False)
        elif output.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            raise UserError(f"--output {output}: use a .csv or .parquet file name")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        frame = recommend(args)
        write(frame, args.output)
    except UserError as exc:
        return print_error(exc)
    print(json.dumps({"output": str(args.output), "users": int(frame["user"].nunique()), "rows": len(frame),
                      "popularity_fallback_users": int(frame.loc[frame["source"] == "popularity", "user"].nunique())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

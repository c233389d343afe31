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
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from contract.atomic import atomic_file
from contract.errors import UserError, print_error
from contract.feature_spec import FeatureSpec
from contract.vocabulary import VocabularyIndex, read_vocabulary, vocabulary_fingerprint

from . import checkpoint
from .data.popularity import checked_item_counts
from .models import build_model
from .runtime import Runtime, start_runtime


def add_recommender_arguments(p: argparse.ArgumentParser) -> None:
    """--checkpoint, --data, --workflow: what a `Recommender` is built from (here and in `python -m serving`)."""
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="DATA_DIR [OLDER_DATA_DIR ...]: the first one's FeatureSpec sizes the model; items seen in "
                        "any of them are excluded (all must be encoded by one workflow)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded the data "
                                                  "(default: the one its FeatureSpec records)")
    p.add_argument("--amp", action="store_true",
                   help="score under autocast (bf16 on CPU, fp16 on CUDA): about twice as fast where the CPU has "
                        "native bf16; close scores may swap places")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.recommend", description=__doc__)
    add_recommender_arguments(p)
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


@torch.no_grad()
def top_items(model, users: torch.Tensor, n_items: int, first_index: int, seen: np.ndarray, k: int) -> tuple:
    """Scores of every item for a batch of users, seen and reserved items masked, then top-k."""
    items = torch.arange(n_items, device=users.device)
    scores = model.score_grid(users, items).float()
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


class Recommender:
    """A checkpoint ready to answer raw user ids: its model on the runtime's device, the workflow's
    vocabularies, what every --data folder says the users have, and the item popularity.

    `python -m training.recommend` and `python -m serving` both answer through it. The checks
    (data, checkpoint, workflow) run on construction; the model, history and popularity load on
    first use, so a bad request is refused before anything heavy happens.
    """

    def __init__(self, checkpoint_path: Path, data: list[Path], workflow: Path | None = None, batch_users: int = 256,
                 amp: bool = False):
        self.specs = history_specs(data)
        self.spec = spec = self.specs[0]
        self.payload = checkpoint.load(checkpoint_path)
        checkpoint.check_fits(self.payload, checkpoint_path, spec.table_sizes)
        self.user_vocab, self.item_vocab = load_vocabularies(spec, workflow_of(spec, workflow))
        self.users, self.items = VocabularyIndex(self.user_vocab), VocabularyIndex(self.item_vocab)
        self.n_items = spec.item_cardinality
        self.raw_items = np.empty(self.n_items, dtype=object)
        self.raw_items[self.item_vocab.index.to_numpy()] = self.item_vocab.to_numpy()
        self.batch_users, self.amp = batch_users, amp

    def check_topk(self, k: int) -> None:
        if not 1 <= k <= len(self.item_vocab):
            raise UserError(f"--topk {k} must be between 1 and the catalogue size ({len(self.item_vocab)} items)")

    def encode_users(self, raw_ids: list[str], strict: bool = True) -> np.ndarray:
        """Encoded index per raw id, -1 where the workflow has never seen it. `strict`: text that is not
        an integer, where the workflow's user ids are, is an error rather than an unknown user."""
        try:
            return self.users.encode(raw_ids, missing=-1, strict=strict)
        except ValueError as exc:
            raise UserError(f"--users: {exc}; this workflow's user ids are integers")

    @cached_property
    def runtime(self) -> Runtime:
        return start_runtime(self.amp)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @cached_property
    def model(self) -> torch.nn.Module:
        model = build_model(self.payload["meta"]["architecture"], self.spec.table_sizes).to(self.device).eval()
        model.load_state_dict(self.payload["model"])
        return model

    @cached_property
    def seen(self) -> np.ndarray:
        return seen_keys(self.specs)

    @cached_property
    def popularity(self) -> np.ndarray:
        """Train interactions per item index, -inf on the reserved indices."""
        popularity = checked_item_counts(self.spec).astype(np.float64)
        popularity[:self.spec.first_index] = -np.inf
        return popularity

    def top(self, encoded: np.ndarray, k: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, items), each (users, k), for known encoded users; items they have score -inf."""
        scores, items = [], []
        for start in tqdm(range(0, len(encoded), self.batch_users), desc="recommend", unit="batch", file=sys.stderr,
                          disable=not (progress and sys.stderr.isatty())):
            users = torch.from_numpy(encoded[start:start + self.batch_users]).to(self.device)
            with self.runtime.autocast():
                batch_scores, batch_items = top_items(self.model, users, self.n_items, self.spec.first_index, self.seen, k)
            scores.append(batch_scores.cpu().numpy())
            items.append(batch_items.cpu().numpy())
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(items)

    def popular(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(train counts, items) of the k most popular items: what unknown users get."""
        best = np.argsort(-self.popularity, kind="stable")[:k]
        return self.popularity[best], best

    @torch.no_grad()
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's logit (float32) for each pair of encoded user and item indices."""
        pairs = (torch.from_numpy(np.asarray(ids, dtype=np.int64)).to(self.device) for ids in (users, items))
        with self.runtime.autocast():
            return self.model(*pairs).float().cpu().numpy()


def recommend(args) -> pd.DataFrame:
    rec = Recommender(args.checkpoint, args.data, args.workflow, args.batch_users, args.amp)
    rec.check_topk(args.topk)
    if args.all_users:  # in the order of the raw ids, not of the vocabulary's frequency order
        by_raw_id = rec.user_vocab.sort_values(kind="stable")
        raw_users, encoded = [str(u) for u in by_raw_id.to_numpy()], by_raw_id.index.to_numpy()
    else:
        raw_users = [u.strip() for u in args.users.split(",") if u.strip()]
        encoded = rec.encode_users(raw_users)

    frames = []
    known = np.flatnonzero(encoded >= 0)
    if len(known):
        scores, items = rec.top(encoded[known], args.topk, progress=True)
        frames.append(recommendation_rows(np.asarray(raw_users, dtype=object)[known], items, scores, rec.raw_items, "model"))
    unknown = np.flatnonzero(encoded < 0)
    if len(unknown):
        counts, best = rec.popular(args.topk)
        frames.append(recommendation_rows(np.asarray(raw_users, dtype=object)[unknown], np.tile(best, (len(unknown), 1)),
                                          np.tile(counts, (len(unknown), 1)), rec.raw_items, "popularity"))
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


def recommendation_rows(users, items, scores, raw_items, source) -> pd.DataFrame:
    """One row per (user, rank); items masked as seen (score -inf) are dropped, never padded in."""
    k = items.shape[1]
    frame = pd.DataFrame({
        "user": np.repeat(users, k), "rank": np.tile(np.arange(1, k + 1), len(users)),
        "item": raw_items[items.ravel()], "score": scores.ravel(), "source": source,
    })
    return frame[np.isfinite(frame["score"])]


def write(frame: pd.DataFrame, output: Path) -> None:
    if output.suffix not in (".csv", ".parquet"):
        raise UserError(f"--output {output}: use a .csv or .parquet file name")
    with atomic_file(output) as tmp:
        if output.suffix == ".parquet":
            frame.astype({"user": str, "item": str}).to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def run_cli(args, produce) -> int:
    """Recommend with `produce(args)`, write --output atomically, print a JSON summary; 2 on bad input."""
    try:
        frame = produce(args)
        write(frame, args.output)
    except UserError as exc:
        return print_error(exc)
    print(json.dumps({"output": str(args.output), "users": int(frame["user"].nunique()), "rows": len(frame),
                      "popularity_fallback_users": int(frame.loc[frame["source"] == "popularity", "user"].nunique())}))
    return 0


def main(argv=None) -> int:
    return run_cli(parser().parse_args(argv), recommend)


if __name__ == "__main__":
    sys.exit(main())

"""python -m training.recommend: top-K raw item ids per raw user id from a checkpoint of any family.

A user's history is every positive they have in any `--data` folder (train, validation and test
positives of the pairs layout; train lists and held-out fold-in and target lists of the lists layout),
e.g. the newer data a model was fine-tuned on and the older data it was first trained on. Everything a
user has (those positives and the interactions below the positive rule, "known") is excluded from their
list; with `--history train`, only train and known are (an offline evaluation of your own split: its test
items stay candidates). Families that read a history (Mult-VAE) fold it in; families with a row per user (NeuMF) score
from that row. Users the model cannot score (unknown to the workflow, or without any history for a
history-reading family) get the most popular items, flagged source=popularity.

A checkpoint of an older workflow that the data's grown workflow extends (`etl prepare --grow`) answers
too, until it is grown itself (`python -m training --init_from`): it has no rows for the newer users and
items, so NeuMF gives the newer users the popular items and neither family recommends the newer items;
Mult-VAE folds in the newer users' histories (of the items it knows) without retraining.
"""
from __future__ import annotations

import argparse
import sys
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from contract.atomic import atomic_file, refuse_existing
from contract.chunks import read_parquet_lists
from contract.console import entry_point
from contract.errors import UserError
from contract.feature_spec import FeatureSpec
from contract.lock import exclusive
from contract.vocabulary import VocabularyIndex, read_vocabulary, vocabulary_fingerprint

from . import saved
from .data.popularity import checked_item_counts
from .ranking import exclude
from .runtime import Runtime, start_runtime
from .sparse import Lists

# One meaning per column: score is the model's score (empty where source=popularity), popularity the
# item's train positives (every row).
COLUMNS = ["user", "rank", "item", "source", "score", "popularity"]
HISTORIES = ("all", "train")  # --history: which mappings of --data are what a user has


def add_recommender_arguments(p: argparse.ArgumentParser) -> None:
    """--checkpoint, --data, --workflow, --amp: what a `Recommender` is built from (here and in `python -m serving`)."""
    p.add_argument("--checkpoint", type=Path, required=True, help="model.pth or last.pth of any family")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="DATA_DIR [OLDER_DATA_DIR ...]: the first one's FeatureSpec sizes the model (the layout it was "
                        "trained on); every folder's interactions are the users' history (all encoded by one workflow)")
    p.add_argument("--workflow", type=Path, help="the saved workflow that encoded the data "
                                                  "(default: the one its FeatureSpec records)")
    p.add_argument("--amp", action="store_true",
                   help="score under autocast (bf16 on CPU, fp16 on CUDA): about twice as fast where the CPU has "
                        "native bf16; close scores may swap places")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.recommend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recommender_arguments(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated raw user ids")
    who.add_argument("--all-users", action="store_true", help="every user the workflow knows, by raw id")
    p.add_argument("-k", "--topk", type=int, default=10, help="items per user (default: 10)")
    p.add_argument("--output", type=Path, required=True, help=".csv or .parquet")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--batch_users", type=int, default=256, help="users scored per forward pass (default: 256)")
    p.add_argument("--history", choices=HISTORIES, default="all",
                   help="what a user has, never recommended back: all (every mapping of --data: train, validation, "
                        "test, known; what serving does) or train (train and known only: an offline evaluation of "
                        "your own split, whose test items must stay candidates) (default: all)")
    return p


def history_specs(folders: list[Path]) -> list[FeatureSpec]:
    """The FeatureSpecs of every --data folder, checked to share one encoding: the first one's workflow, or one
    it extends (`etl prepare --grow` keeps every old index, so older data stays valid history)."""
    specs = [FeatureSpec.from_yaml(folder) for folder in folders]
    first = specs[0]
    ancestors = {a["workflow_id"]: a["cardinalities"] for a in first.encoding.get("extends") or []}
    for folder, spec in zip(folders[1:], specs[1:]):
        if spec.workflow_id in ancestors and spec.table_sizes == ancestors[spec.workflow_id]:
            continue
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


def interactions(spec: FeatureSpec, mapping: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(users, items, positive) of one mapping as flat pairs, either layout: the pairs layout's test and
    validation series keep their positive rows only (their negatives are sampled); `known` is below the rule."""
    if spec.is_lists:
        features = [spec.fold_in_feature, spec.target_feature] if mapping in ("validation", "test") else [spec.item_feature]
        users, items = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for chunk in spec.chunks(mapping):
            for path in chunk["files"]:
                data = read_parquet_lists(path, [spec.user_feature, *features])
                for name in features:
                    offsets, values = data[name]
                    users.append(np.repeat(data[spec.user_feature], np.diff(offsets)))
                    items.append(values)
        return np.concatenate(users).astype(np.int64), np.concatenate(items).astype(np.int64), mapping != "known"
    frame = spec.read(mapping)
    if mapping != "known":
        frame = frame[frame[spec.label_feature] == 1]
    return (frame[spec.user_feature].to_numpy(np.int64), frame[spec.item_feature].to_numpy(np.int64),
            mapping != "known")


def histories(specs: list[FeatureSpec], users: np.ndarray, history: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique user * items + item keys of `users`' positives, and of everything they have (in every
    mapping, or with `history` "train" in train and known only)."""
    n_items = specs[0].item_cardinality
    positive, everything = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for spec in specs:
        for mapping in spec.source_spec:
            if history == "train" and mapping not in ("train", "known"):
                continue
            u, i, is_positive = interactions(spec, mapping)
            mine = np.isin(u, users)
            keys = u[mine] * n_items + i[mine]
            everything.append(keys)
            if is_positive:
                positive.append(keys)
    return np.unique(np.concatenate(positive)), np.unique(np.concatenate(everything))


class Recommender:
    """A checkpoint of any family ready to answer raw user ids: its model on the runtime's device, the
    workflow's vocabularies, what every --data folder says the users have, and the item popularity.

    `python -m training.recommend` and `python -m serving` both answer through it. The checks (data,
    checkpoint, layout, workflow) run on construction; the model, histories and popularity load on first
    use, so a bad request is refused before anything heavy happens.
    """

    def __init__(self, checkpoint_path: Path, data: list[Path], workflow: Path | None = None, batch_users: int = 256,
                 amp: bool = False, history: str = "all"):
        self.specs = history_specs(data)
        self.spec = spec = self.specs[0]
        self.saved = saved.load(checkpoint_path, spec, tables="extends")
        self.variant, self.task = self.saved.variant, self.saved.task
        self.model_sizes = self.saved.sizes  # smaller than the data's until it is grown
        self.user_vocab, self.item_vocab = load_vocabularies(spec, workflow_of(spec, workflow))
        self.users, self.items = VocabularyIndex(self.user_vocab), VocabularyIndex(self.item_vocab)
        self.n_items = spec.item_cardinality
        self.raw_items = np.empty(self.n_items, dtype=object)
        self.raw_items[self.item_vocab.index.to_numpy()] = self.item_vocab.to_numpy()
        self.batch_users, self.amp, self.history = batch_users, amp, history

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
        return self.saved.build()[0].to(self.device).eval()

    @cached_property
    def counts(self) -> np.ndarray:
        """Train positives per item index."""
        return checked_item_counts(self.spec)

    @cached_property
    def allowed(self) -> torch.Tensor:
        """Items this family recommends (reserved indices never)."""
        return self.task.candidates(torch.from_numpy(self.counts), self.spec.first_index).to(self.device)

    @cached_property
    def _history(self) -> tuple[np.ndarray, np.ndarray]:
        return histories(self.specs, np.arange(self.spec.table_sizes["users"]), self.history)

    @cached_property
    def _model_history(self) -> np.ndarray:
        """The positives' keys of items the model has rows for (every item once it is grown)."""
        positive = self._history[0]
        return positive[positive % self.n_items < self.model_sizes["items"]]

    def scorable(self, encoded: np.ndarray) -> np.ndarray:
        """Which encoded users the model scores: known to the workflow and, for families that fold in a
        history, with at least one positive in --data (of an item the model knows), else with a row in the model."""
        known = encoded >= 0
        if self.task.needs_history:
            known &= np.isin(encoded, self._model_history // self.n_items)
        else:
            known &= encoded < self.model_sizes["users"]
        return known

    def top(self, encoded: np.ndarray, k: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, items), each (users, k), for scorable encoded users; items they have score -inf."""
        everything = self._history[1]
        scores, items = [], []
        for start in tqdm(range(0, len(encoded), self.batch_users), desc="recommend", unit="batch", file=sys.stderr,
                          disable=not (progress and sys.stderr.isatty())):
            users = encoded[start:start + self.batch_users]
            batch_scores, batch_items = self._top(users, everything, k)
            scores.append(batch_scores.cpu().numpy())
            items.append(batch_items.cpu().numpy())
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(items)

    @torch.no_grad()
    def _top(self, users: np.ndarray, everything: np.ndarray, k: int):
        n, width = len(users), self.model_sizes["items"]
        fold_in = self._fold_in(torch.from_numpy(users))
        seen = Lists.from_keys(everything, users, self.n_items, self.device).rows(0, n, self.n_items)
        with self.runtime.autocast():
            scores = self.task.score_users(self.model, torch.from_numpy(users).to(self.device), fold_in)
        if width < self.n_items:  # items newer than the model: it cannot score them
            scores = torch.nn.functional.pad(scores.float(), (0, self.n_items - width), value=-torch.inf)
        return torch.topk(exclude(scores.float().clone(), seen, self.allowed), min(k, self.n_items), dim=1)

    def popular(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(train positives, items) of the k most popular items: what users the model cannot score get."""
        popularity = np.where(self.allowed.cpu().numpy(), self.counts, -np.inf).astype(np.float64)
        best = np.argsort(-popularity, kind="stable")[:k]
        return popularity[best], best

    @torch.no_grad()
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's score (float32) for each pair of encoded user and item indices; NaN where the model has
        no row for the user or the item (newer than it: it is not grown yet)."""
        users, items = (np.asarray(ids, dtype=np.int64) for ids in (users, items))
        inside = (items < self.model_sizes["items"]) & (self.task.needs_history | (users < self.model_sizes["users"]))
        out = np.full(len(users), np.nan, dtype=np.float32)
        if inside.any():
            users, items = (torch.from_numpy(ids[inside]).to(self.device) for ids in (users, items))
            with self.runtime.autocast():
                out[inside] = self.task.score_pairs(self.model, users, items, self._fold_in).float().cpu().numpy()
        return out

    def _fold_in(self, users: torch.Tensor) -> torch.Tensor:
        """The users' positives of items the model knows as a CSR multi-hot (for families that fold in a history)."""
        return Lists.from_keys(self._model_history, users.cpu().numpy(), self.n_items, self.device).rows(
            0, len(users), self.model_sizes["items"])


def recommend(args) -> pd.DataFrame:
    rec = Recommender(args.checkpoint, args.data, args.workflow, args.batch_users, args.amp, args.history)
    rec.check_topk(args.topk)
    if args.all_users:  # in the order of the raw ids, not of the vocabulary's frequency order
        by_raw_id = rec.user_vocab.sort_values(kind="stable")
        raw_users, encoded = [str(u) for u in by_raw_id.to_numpy()], by_raw_id.index.to_numpy()
    else:
        raw_users = [u.strip() for u in args.users.split(",") if u.strip()]
        encoded = rec.encode_users(raw_users)
    raw_users = np.asarray(raw_users, dtype=object)
    frames = []
    scored = rec.scorable(encoded)
    if scored.any():
        scores, items = rec.top(encoded[scored], args.topk, progress=True)
        frames.append(recommendation_rows(raw_users[scored], items, scores, rec, "model"))
    fallback = np.flatnonzero(~scored)
    if len(fallback):
        counts, best = rec.popular(args.topk)
        frames.append(recommendation_rows(raw_users[fallback], np.tile(best, (len(fallback), 1)),
                                          np.full((len(fallback), len(best)), np.nan), rec, "popularity"))
        unseen = int((encoded[fallback] < 0).sum())
        names = ", ".join(map(str, raw_users[fallback][:5])) + ("..." if len(fallback) > 5 else "")
        print(f"note: {len(fallback)} user id(s) ({names}) got the most popular items (source=popularity): "
              f"{unseen} unknown to the workflow" + (f", {len(fallback) - unseen} without positives in --data"
                                                     if rec.task.needs_history else ""), file=sys.stderr)
        if not rec.task.needs_history and len(fallback) > unseen:
            print(f"note: {len(fallback) - unseen} of them are newer than the model (it has no row for them): they get "
                  f"the popular items until it is grown (python -m training --data {args.data[0]} --init_from "
                  f"{args.checkpoint})", file=sys.stderr)
    newer_items = rec.n_items - rec.model_sizes["items"]
    if newer_items:
        print(f"note: {newer_items:,} item(s) are newer than the model (it has no row for them): it recommends none of "
              "them until it is grown", file=sys.stderr)
    frame = pd.concat(frames, ignore_index=True)[COLUMNS]
    short = frame[frame["source"] == "model"].groupby("user", sort=False).size()
    short = short[short < args.topk]
    if len(short):
        print(f"note: {len(short)} user(s) have fewer than {args.topk} items they have not seen "
              f"({', '.join(map(str, short.index[:5]))}{'...' if len(short) > 5 else ''}): their lists are shorter",
              file=sys.stderr)
    return frame


def recommendation_rows(users, items, scores, rec: Recommender, source: str) -> pd.DataFrame:
    """One row per (user, rank); items masked as seen (score -inf) are dropped, never padded in."""
    k = items.shape[1]
    frame = pd.DataFrame({
        "user": np.repeat(users, k), "rank": np.tile(np.arange(1, k + 1), len(users)),
        "item": rec.raw_items[items.ravel()], "source": source, "score": scores.ravel().astype(np.float64),
        "popularity": rec.counts[items.ravel()],
    })
    return frame[~np.isneginf(frame["score"])]


def check_output(output: Path, overwrite: bool) -> None:
    if output.suffix not in (".csv", ".parquet"):
        raise UserError(f"--output {output}: use a .csv or .parquet file name")
    refuse_existing(output, overwrite)


def write(frame: pd.DataFrame, output: Path, overwrite: bool) -> None:
    check_output(output, overwrite)
    with atomic_file(output) as tmp:
        if output.suffix == ".parquet":
            frame.astype({"user": str, "item": str}).to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def recommend_to_file(args) -> dict:
    check_output(args.output, args.overwrite)  # before any work
    with exclusive(args.output):
        frame = recommend(args)
        write(frame, args.output, args.overwrite)
    return {"output": str(args.output), "users": int(frame["user"].nunique()), "rows": len(frame),
            "popularity_fallback_users": int(frame.loc[frame["source"] == "popularity", "user"].nunique())}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return entry_point(lambda: recommend_to_file(args))


if __name__ == "__main__":
    sys.exit(main())

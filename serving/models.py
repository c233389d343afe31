"""The two Triton models: what they compute for a list of requests, in numpy (no server here).

Triton's dynamic batcher hands each model several requests at once; their rows are answered
together (one pass over the model) and split back per request.

Both answer through `training.recommend`'s `Recommender`, for every model family (NeuMF and its
variants, Mult-VAE):

- `recommend`: user_id (BYTES [n, 1]) -> item_ids (BYTES [n, K]), scores (FP32 [n, K]),
  source (BYTES [n, 1]): the items `training.recommend` gives those users, in the same order.
  source=model: scores are the model's logits, items the user has are excluded; a user with
  fewer than K unseen items gets b"" items with score -inf at the end. source=popularity (a
  user the model cannot score: unknown to the workflow or, for Mult-VAE, without any positive
  in --data to fold in): the most popular items, scores = their train positives.
- `score`: user_id, item_id (BYTES [n, 1]) -> score (FP32 [n, 1]), the model's logit of the pair
  (Mult-VAE: the item's logit after folding in the user's positives in --data; a user without
  any is scored from an empty fold-in). Raw ids go through the saved workflow's vocabularies as
  Categorify maps them; an id it has never seen becomes the out-of-vocabulary index, as in
  `etl transform`.

Raw ids are text. Where the workflow's ids are integers, text that is not an integer is an id
the workflow has never seen (`training.recommend --users` refuses it instead).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from contract.errors import UserError
from training.recommend import Recommender

MODEL, POPULARITY = b"model", b"popularity"


class _Batched(ABC):
    """Answers the rows of every request handed over at once, then splits the answer per request."""

    inputs: tuple[str, ...] = ()

    def __init__(self):
        self.requests = self.executions = self.rows = 0

    def __call__(self, requests) -> list[dict]:
        sizes = [len(request[self.inputs[0]]) for request in requests]
        columns = [[v for request in requests for v in request[name].ravel()] for name in self.inputs]
        answer = self.answer(*columns)
        self.requests, self.executions, self.rows = self.requests + len(requests), self.executions + 1, self.rows + sum(sizes)
        bounds = np.cumsum(sizes)[:-1]
        parts = {name: np.split(values, bounds) for name, values in answer.items()}
        return [{name: parts[name][i] for name in answer} for i in range(len(requests))]

    @abstractmethod
    def answer(self, *columns: list[bytes]) -> dict[str, np.ndarray]:
        """Outputs for the concatenated rows of all requests (one row per input row)."""

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "executions": self.executions, "rows": self.rows}


class RecommendModel(_Batched):
    inputs = ("user_id",)

    def __init__(self, rec: Recommender, k: int):
        super().__init__()
        rec.check_topk(k)
        self.rec, self.k = rec, k
        self.item_ids = np.array([b"" if v is None else str(v).encode() for v in rec.raw_items], dtype=object)
        self.popular = rec.popular(k)

    def answer(self, users: list[bytes]) -> dict[str, np.ndarray]:
        encoded = self.rec.encode_users(users, strict=False)
        scored = self.rec.scorable(encoded)
        scores = np.empty((len(users), self.k), dtype=np.float32)
        items = np.empty((len(users), self.k), dtype=np.int64)
        scores[scored], items[scored] = self.rec.top(encoded[scored], self.k)
        scores[~scored], items[~scored] = self.popular
        item_ids = self.item_ids[items]
        item_ids[~np.isfinite(scores)] = b""  # seen items that filled a short list
        source = np.where(scored, MODEL, POPULARITY).astype(object)[:, None]
        return {"item_ids": item_ids, "scores": scores, "source": source}


class ScoreModel(_Batched):
    inputs = ("user_id", "item_id")

    def __init__(self, rec: Recommender):
        super().__init__()
        self.rec = rec
        reserved = rec.spec.encoding.get("reserved_indices") or {}
        if "out_of_vocabulary" not in reserved:
            raise UserError(f"{rec.spec.base_directory}: metadata.encoding.reserved_indices names no out_of_vocabulary "
                            "index, so unseen ids cannot be scored")
        self.oov = int(reserved["out_of_vocabulary"])

    def answer(self, users: list[bytes], items: list[bytes]) -> dict[str, np.ndarray]:
        encoded_users = self.rec.users.encode(users, missing=self.oov, strict=False)
        encoded_items = self.rec.items.encode(items, missing=self.oov, strict=False)
        return {"score": self.score(encoded_users, encoded_items)[:, None]}

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """`Recommender.score`; a family that scores all items of a user to score one pair (Mult-VAE) gets at
        most --batch-users distinct users per pass, so a large batch of pairs never builds a huge grid."""
        if not self.rec.task.needs_history:
            return self.rec.score(users, items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        _, group = np.unique(users, return_inverse=True)
        for start in range(0, int(group.max(initial=-1)) + 1, self.rec.batch_users):
            mine = (group >= start) & (group < start + self.rec.batch_users)
            out[mine] = self.rec.score(users[mine], items[mine])
        return out

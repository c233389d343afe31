"""The two Triton models: what they compute for a list of requests, in numpy (no server here).

Triton's dynamic batcher hands each model several requests at once; their rows are answered
together (one pass over the model) and split back per request.

- `recommend`: user_id (BYTES [n, 1]) -> item_ids (BYTES [n, K]), scores (FP32 [n, K]),
  source (BYTES [n, 1]): the items `training.recommend` gives those users, in the same order,
  through the same `Recommender`. source=model: scores are logits, items the user has are
  excluded; a user with fewer than K unseen items gets b"" items with score -inf at the end.
  source=popularity (a user the workflow has never seen): the most popular items, scores =
  their train interactions.
- `score`: user_id, item_id (BYTES [n, 1]) -> score (FP32 [n, 1]), the model's logit. Raw ids go
  through the saved workflow's vocabularies as Categorify maps them; an id it has never seen
  becomes the out-of-vocabulary index, as in `etl transform`.

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
        known = encoded >= 0
        scores = np.empty((len(users), self.k), dtype=np.float32)
        items = np.empty((len(users), self.k), dtype=np.int64)
        scores[known], items[known] = self.rec.top(encoded[known], self.k)
        scores[~known], items[~known] = self.popular
        item_ids = self.item_ids[items]
        item_ids[~np.isfinite(scores)] = b""  # seen items that filled a short list
        source = np.where(known, MODEL, POPULARITY).astype(object)[:, None]
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
        return {"score": self.rec.score(encoded_users, encoded_items)[:, None]}

"""python -m bench.rank_topk: the full-ranking order by top-k selection (`ranking.pessimistic_order`) against the
two stable sorts of whole rows it replaced, on one batch of ml-1m's shape (71 users x 3,684 items), one thread,
best of 5 x 20 calls each, in one run; the two orders are checked equal first."""
from __future__ import annotations

import time

import torch

from training.ranking import pessimistic_order

BATCH, ITEMS, DEPTH = 71, 3684, 50


def by_sorting(scores: torch.Tensor, truth: torch.Tensor, k: int) -> torch.Tensor:
    """The earlier order: targets last among equals by two stable sorts of whole rows."""
    targets_last = torch.sort(truth.to(torch.uint8), dim=1, stable=True).indices
    by_score = torch.sort(torch.gather(scores, 1, targets_last), dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(targets_last, 1, by_score)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    scores, truth = torch.randn(BATCH, ITEMS), torch.rand(BATCH, ITEMS) < 0.01
    assert torch.equal(by_sorting(scores, truth, DEPTH), pessimistic_order(scores, truth, DEPTH))
    for name, order in (("two stable sorts", by_sorting), ("top-k on one int64 key", pessimistic_order)):
        best = float("inf")
        for _ in range(5):
            begin = time.perf_counter()
            for _ in range(20):
                order(scores, truth, DEPTH)
            best = min(best, (time.perf_counter() - begin) / 20)
        print(f"{name}: {best * 1e3:.2f} ms per batch of {BATCH} x {ITEMS}")


if __name__ == "__main__":
    main()

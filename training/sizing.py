"""The one rule that sizes a batch to the data: a power of two near the epoch's units / the steps wanted."""
from __future__ import annotations

import math


def power_of_two_per_step(units: float, steps_per_epoch: int, low: int, high: int) -> int:
    """The power of two nearest to `units` / `steps_per_epoch`, clamped to [low, high]."""
    per_step = max(units / steps_per_epoch, 1.0)
    return int(min(high, max(low, 2 ** round(math.log2(per_step)))))

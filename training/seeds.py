"""Every random stream of an epoch derives from (seed, epoch, rank): resuming needs no RNG state."""
import numpy as np


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])

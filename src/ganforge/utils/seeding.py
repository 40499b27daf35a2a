"""The run seed, readable anywhere after ``pytorch_lightning.seed_everything``."""

from __future__ import annotations

import os


def run_seed() -> int:
    """The seed Lightning's ``seed_everything`` set for this run (0 when none was set)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def reseed_epoch(epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch from ``(run seed, epoch, rank)`` alone.

    Called at an epoch's first batch, it makes a run resumed at an epoch boundary draw what an
    uninterrupted run draws.
    """
    import random

    import numpy as np
    import torch

    seed = (run_seed() * 1_000_003 + epoch * 1_009 + rank) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

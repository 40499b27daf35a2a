"""The run seed, readable anywhere after ``pytorch_lightning.seed_everything``."""

from __future__ import annotations

import os


def run_seed() -> int:
    """The seed Lightning's ``seed_everything`` set for this run (0 when none was set)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))

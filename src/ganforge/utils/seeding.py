"""The run seed, readable anywhere after ``pytorch_lightning.seed_everything``, and the random
states a resumed run needs.

Randomness in ganforge is seeded at fixed points so that a resumed run draws what an
uninterrupted run draws: every epoch's first batch reseeds python, numpy and torch from
``(run seed, epoch, rank)`` (:func:`reseed_epoch`); DataLoader workers reseed before every batch
from ``(run seed, epoch, batch, rank)`` (:func:`batch_seed`); and a checkpoint written inside an
epoch carries the main process's random states (:func:`rng_state`), restored before the resumed
run's first batch is drawn.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def run_seed() -> int:
    """The seed Lightning's ``seed_everything`` set for this run (0 when none was set)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def seed_all(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def reseed_epoch(epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch from ``(run seed, epoch, rank)`` alone.

    Called at an epoch's first batch, it makes a run resumed at an epoch boundary draw what an
    uninterrupted run draws.
    """
    seed_all((run_seed() * 1_000_003 + epoch * 1_009 + rank) % 2**32)


def batch_seed(epoch: int, batch: int, rank: int = 0) -> int:
    """The seed a DataLoader worker takes before loading training batch ``batch`` of ``epoch``.

    It depends on the batch's place alone, not on which worker loads it or how many batches
    that worker loaded before, so random crops and flips are the same with any number of
    workers and after a resume.
    """
    return int(np.random.SeedSequence([run_seed(), epoch, batch, rank]).generate_state(1)[0])


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch CPU and (initialised) CUDA random states.

    Held as tensors and plain values, so a checkpoint holding them loads with
    ``torch.load(weights_only=True)``.
    """
    version, mt, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where as many GPUs are seen)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def process_rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def process_count() -> int:
    """The number of processes in the default process group (1 without one)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rng_states_by_rank() -> list[dict[str, Any]]:
    """Every process's :func:`rng_state`, by rank (Lightning writes the checkpoint of rank 0 alone,
    so the states of the others travel to it). A collective call: every rank must make it."""
    state = rng_state()
    if process_count() == 1:
        return [state]
    states: list[Any] = [None] * process_count()
    torch.distributed.all_gather_object(states, state)
    return states

"""Schedules of a loss weight over training, as functions ``schedule(weight, progress) -> weight``.

``progress`` is the share of training done (0 at the first iteration, 1 at ``model.max_iters`` or
at the end of ``trainer.max_epochs``); a :class:`~ganforge.losses.objective.Penalty` with a
``schedule`` uses ``schedule(weight, progress)`` instead of ``weight``.
"""

from __future__ import annotations

import math


def cosine_decay(weight: float, progress: float, final_ratio: float = 0.1, until: float = 1.0) -> float:
    """Cosine decay from ``weight`` to ``final_ratio * weight`` over the first ``until`` of training.

    R3GAN (Huang et al. 2024) decays its gamma this way: ``base + (1 - d) * (final - base)`` with
    ``d = (1 + cos(pi * t)) / 2`` (its ``cosine_decay_with_warmup`` without warm-up), e.g. 0.05 -> 0.005
    on CIFAR-10.

    Args:
        weight: the weight at the start.
        progress: share of training done, 0 to 1.
        final_ratio: the final weight as a share of ``weight``.
        until: share of training after which the weight stays at its final value.
    """
    if final_ratio < 0.0 or until <= 0.0:
        raise ValueError(f"cosine_decay needs final_ratio >= 0 and until > 0; got {final_ratio}, {until}")
    t = min(1.0, max(0.0, progress) / until)
    decay = 0.5 * (1.0 + math.cos(math.pi * t))
    return weight * (final_ratio + (1.0 - final_ratio) * decay)

"""Exponential moving average of generator weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(decay: float, step: int) -> float:
    """Decay for update number ``step``: ramps up as ``(1 + s) / (10 + s)`` until ``decay``.

    The ramp keeps the average from being dominated by the random initial weights early on.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` for parameters; buffers are copied."""
    ema_params = list(ema.parameters())
    model_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, model_params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)

"""Exponential moving average of generator weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(decay: float, step: int) -> float:
    """Decay for update number ``step``: ramps up as ``(1 + s) / (10 + s)`` until ``decay``.

    The ramp keeps the average from being dominated by the random initial weights early on.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


def half_life_beta(
    batch_images: int, half_life_kimg: float, images_seen: int, rampup: float | None = None
) -> float:
    """stylegan2-ada's EMA decay: ``0.5 ** (batch_images / (half_life_kimg * 1000))``, so the average
    halves its weight on old generators every ``half_life_kimg`` thousand images whatever the batch.

    Args:
        batch_images: images per update (every process's).
        half_life_kimg: the half-life in thousands of images (``ema_kimg``, 10 for StyleGAN2).
        images_seen: images trained on before this update.
        rampup: cap the half-life at ``rampup * images_seen`` early on (``ema_rampup``); ``None`` = off.
    """
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` for parameters; buffers are copied."""
    ema_params = list(ema.parameters())
    model_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, model_params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)

"""Small data factories and instrumented stand-ins for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_images(folder: Path, n: int = 4, size: int = 20, mode: str = "RGB", suffix: str = ".png") -> Path:
    """Write ``n`` random images into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
        Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(folder / f"img_{i:03d}{suffix}")
    return folder


class ExplodingLoss:
    """A D loss that turns NaN on chosen calls (1-based), to exercise the divergence guard."""

    calls = 0
    nan_on: set[int] = set()

    @classmethod
    def reset(cls, nan_on: set[int]) -> None:
        cls.calls, cls.nan_on = 0, set(nan_on)


def exploding_d_loss(real_logits, fake_logits):
    from ganforge.losses.adversarial import d_loss_bce

    ExplodingLoss.calls += 1
    loss = d_loss_bce(real_logits, fake_logits)
    return loss * float("nan") if ExplodingLoss.calls in ExplodingLoss.nan_on else loss


class NormRecordingAdam(torch.optim.Adam):
    """Adam that records the total gradient norm it is about to apply.

    The recorded norm is the clipped one only where a GradScaler steps the optimizer (``16-mixed``):
    without one, Lightning runs its clipping hook inside the closure this ``step`` calls, after the
    norm is recorded.
    """

    norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        NormRecordingAdam.norms.append(
            torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
        )
        return super().step(closure)


def bare_trainer(**kwargs):
    """A CPU ``Trainer`` with nothing but training: no logger, checkpoints, bar or validation (2 batches)."""
    import pytorch_lightning as pl

    settings = {
        "accelerator": "cpu",
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**settings, **kwargs})

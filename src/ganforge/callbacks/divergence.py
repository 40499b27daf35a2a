"""Stop, or roll back, a run whose losses or weights stop being finite.

A GAN that diverges produces NaN/Inf losses and then NaN weights; saving those would
overwrite the last good checkpoint. The guard checks every iteration's logged losses (and
the weights every ``check_weights_every`` iterations) and, on the first non-finite value,
either raises :class:`DivergenceError` (``action=stop``: nothing more is saved, so
``checkpoints/last.ckpt`` stays the last good state) or reloads the last good checkpoint
and multiplies both learning rates by ``lr_factor`` (``action=rollback``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from ganforge.utils.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weight; the message names the iteration and values."""


class DivergenceGuard(Callback):
    """Watches for NaN/Inf losses and weights.

    Args:
        action: ``"stop"`` or ``"rollback"``.
        lr_factor: learning-rate multiplier applied at every rollback.
        max_rollbacks: stop after this many rollbacks.
        check_weights_every: iterations between checks of every weight (losses are checked always).
    """

    def __init__(
        self,
        action: str = "stop",
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
        check_weights_every: int = 50,
    ):
        if action not in ("stop", "rollback"):
            raise ValueError(f"divergence action must be 'stop' or 'rollback'; got {action!r}")
        if not 0 < lr_factor < 1:
            raise ValueError(f"divergence lr_factor must be in (0, 1); got {lr_factor}")
        self.action, self.lr_factor, self.max_rollbacks = action, lr_factor, max_rollbacks
        self.check_weights_every = max(1, check_weights_every)
        self.rollbacks = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx
    ) -> None:
        losses = getattr(pl_module, "last_losses", {}) or {}
        bad = {k: float(v) for k, v in losses.items() if not torch.isfinite(torch.as_tensor(v)).all()}
        if not bad and pl_module.iteration % self.check_weights_every == 0:
            bad = {
                f"weight {n}": float("nan")
                for n, p in pl_module.named_parameters()
                if not torch.isfinite(p).all()
            }
        # Under DDP every process must take the same branch, or the others wait forever in the
        # next all-reduce: one non-finite value on any process stops (or rolls back) them all.
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            self._diverged(trainer, pl_module, bad or {"a loss on another process": float("nan")})

    def _last_good(self, trainer: Trainer) -> Path | None:
        # The newest checkpoint: the last-saved file of a checkpoint callback that tracks no metric.
        for cb in trainer.checkpoint_callbacks:
            if not isinstance(cb, ModelCheckpoint):
                continue
            for path in (cb.last_model_path, cb.best_model_path if cb.monitor is None else ""):
                if path and Path(path).is_file():
                    return Path(path)
        return None

    def _diverged(self, trainer: Trainer, pl_module: LightningModule, bad: dict[str, float]) -> None:
        what = ", ".join(f"{k} = {v}" for k, v in list(bad.items())[:5])
        iteration = pl_module.iteration
        good = self._last_good(trainer)
        kept = f"the last good checkpoint is kept: {good}" if good else "no checkpoint had been written yet"
        if self.action == "stop" or good is None or self.rollbacks >= self.max_rollbacks:
            reason = f" after {self.rollbacks} rollbacks" if self.rollbacks else ""
            raise DivergenceError(f"training diverged at iteration {iteration}{reason}: {what}; {kept}")
        self.rollbacks += 1
        ckpt = load_checkpoint(good)
        pl_module.load_state_dict(ckpt["state_dict"])
        pl_module.on_load_checkpoint(ckpt)
        for optimizer, state in zip(trainer.optimizers, ckpt["optimizer_states"], strict=True):
            optimizer.load_state_dict(state)
            for group in optimizer.param_groups:
                group["lr"] *= self.lr_factor**self.rollbacks
        log.warning(
            "training diverged at iteration %d (%s); rolled back to %s with learning rates x%g",
            iteration,
            what,
            good,
            self.lr_factor**self.rollbacks,
        )

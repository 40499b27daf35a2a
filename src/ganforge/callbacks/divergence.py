"""Stop, or roll back, a run whose losses or weights stop being finite.

A GAN that diverges produces NaN/Inf losses and then NaN weights; saving those would
overwrite the last good checkpoint. Reading a loss on the host waits for the accelerator to
finish its queue, and under DDP a shared decision is an all-reduce, so the guard does neither
every iteration: each iteration it copies the logged losses into a buffer on the device (a
NaN that comes and goes between checks is still seen), every ``check_weights_every``
iterations it records which weights are finite, and every ``check_every`` iterations it reads
all of it once and all processes take one shared decision. It also decides before anything
can be saved (at the last batch of an epoch, before validation, at epoch end and in any
checkpoint save), so nothing written after a NaN replaces the last good checkpoint. On a
non-finite value it either raises :class:`DivergenceError` (``action=stop``:
``checkpoints/last.ckpt`` stays the last good state) or reloads the last good checkpoint and
multiplies both learning rates by ``lr_factor`` (``action=rollback``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from ganforge.modules.contract import Scheme, require
from ganforge.utils.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weight; the message names the iteration and values."""


class _LossRecord:
    """The values of one set of loss names at each iteration since the last decision, on the device."""

    def __init__(self, names: tuple[str, ...], capacity: int, like: torch.Tensor):
        self.names = names
        # At least float32: a finite float32 loss must not turn into an fp16 inf.
        dtype = torch.promote_types(like.dtype, torch.float32)
        self.values = torch.empty((capacity, len(names)), dtype=dtype, device=like.device)
        self.iterations: list[int] = []

    def add(self, values: tuple[torch.Tensor, ...], iteration: int) -> None:
        torch.stack(values, out=self.values[len(self.iterations)])  # one device op, no host read
        self.iterations.append(iteration)

    def recorded(self) -> torch.Tensor:
        return self.values[: len(self.iterations)]


class DivergenceGuard(Callback):
    """Watches for NaN/Inf losses and weights.

    Args:
        action: ``"stop"`` or ``"rollback"``.
        lr_factor: learning-rate multiplier applied at every rollback.
        max_rollbacks: stop after this many rollbacks.
        check_every: iterations between decisions (one host read and, under DDP, one
            all-reduce); the losses of the iterations in between are recorded on the device.
        check_weights_every: iterations between scans of every weight.
    """

    def __init__(
        self,
        action: str = "stop",
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
        check_every: int = 10,
        check_weights_every: int = 50,
    ):
        if action not in ("stop", "rollback"):
            raise ValueError(f"divergence action must be 'stop' or 'rollback'; got {action!r}")
        if not 0 < lr_factor < 1:
            raise ValueError(f"divergence lr_factor must be in (0, 1); got {lr_factor}")
        if int(check_every) < 1:
            raise ValueError(f"divergence check_every must be >= 1; got {check_every}")
        self.action, self.lr_factor, self.max_rollbacks = action, lr_factor, max_rollbacks
        self.check_every = int(check_every)
        self.check_weights_every = max(1, check_weights_every)
        self.rollbacks = 0
        self._losses: dict[tuple[str, ...], _LossRecord] = {}
        self._weight_scans: list[tuple[int, list[str], torch.Tensor]] = []  # (iteration, names, non-finite)
        self._pending = 0  # batches since the last decision: the same on every process

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        require(pl_module, Scheme, "the divergence guard (callbacks.divergence)")

    # ------------------------------------------------------------------ recording
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx
    ) -> None:
        iteration = pl_module.iteration
        losses = pl_module.last_losses
        if losses:
            names = tuple(losses)
            values = tuple(losses.values())
            if names not in self._losses:
                self._losses[names] = _LossRecord(names, self.check_every, values[0])
            self._losses[names].add(values, iteration)
        if iteration % self.check_weights_every == 0:
            names, params = zip(*pl_module.named_parameters(), strict=True)
            bad = ~torch.stack([torch.isfinite(p).all() for p in params])
            self._weight_scans.append((iteration, list(names), bad))
        self._pending += 1
        # A checkpoint follows the last batch of an epoch (at validation end or epoch end); a
        # full buffer (batches that did not advance the iteration) also decides.
        if (
            iteration % self.check_every == 0
            or batch_idx + 1 >= trainer.num_training_batches
            or self._pending >= self.check_every
        ):
            self._check(trainer, pl_module)

    # Every path to a saved checkpoint decides first. Lightning runs ModelCheckpoint's epoch-end
    # hook after every other callback's, so a NaN of the last iterations is never saved.
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        rollbacks = self.rollbacks
        self._check(trainer, pl_module)  # action=stop raises here, before the file is written
        if self.rollbacks != rollbacks:  # save the rolled-back state, not the one dumped before this hook
            checkpoint["state_dict"] = trainer.strategy.lightning_module_state_dict()
            checkpoint["optimizer_states"] = [trainer.strategy.optimizer_state(o) for o in trainer.optimizers]

    # ------------------------------------------------------------------ deciding
    def _check(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """One host read of everything recorded since the last decision, and one decision for all processes."""
        if not self._pending:
            return
        self._pending = 0
        flags = [~torch.isfinite(rec.recorded()).flatten() for rec in self._losses.values()]
        flags += [bad for _, _, bad in self._weight_scans]
        local = bool(torch.cat(flags).any()) if flags else False
        # Under DDP every process must take the same branch, or the others wait forever in the
        # next all-reduce: one non-finite value on any process stops (or rolls back) them all.
        if trainer.strategy.reduce_boolean_decision(local, all=False):
            self._diverged(trainer, pl_module, *self._findings(local))
        for rec in self._losses.values():
            rec.iterations.clear()
        self._weight_scans.clear()

    def _findings(self, local: bool) -> tuple[dict[str, float], int | None]:
        """The first non-finite value of each loss and weight on this process, and the first iteration."""
        if not local:
            return {"a loss on another process": float("nan")}, None
        seen: dict[str, tuple[int, float]] = {}  # name -> (first iteration, value)
        for rec in self._losses.values():
            for it, row in zip(rec.iterations, rec.recorded().tolist(), strict=True):
                for name, value in zip(rec.names, row, strict=True):
                    if not math.isfinite(value) and (name not in seen or it < seen[name][0]):
                        seen[name] = (it, value)
        for it, names, flags in self._weight_scans:
            for name, flag in zip(names, flags.tolist(), strict=True):
                if flag:
                    seen.setdefault(f"weight {name}", (it, float("nan")))
        return {name: value for name, (_, value) in seen.items()}, min(it for it, _ in seen.values())

    def _last_good(self, trainer: Trainer) -> Path | None:
        # The newest checkpoint: the last-saved file of a checkpoint callback that tracks no metric.
        for cb in trainer.checkpoint_callbacks:
            if not isinstance(cb, ModelCheckpoint):
                continue
            for path in (cb.last_model_path, cb.best_model_path if cb.monitor is None else ""):
                if path and Path(path).is_file():
                    return Path(path)
        return None

    def _diverged(
        self, trainer: Trainer, pl_module: LightningModule, bad: dict[str, float], first: int | None
    ) -> None:
        what = ", ".join(f"{k} = {v}" for k, v in list(bad.items())[:5])
        iteration = pl_module.iteration
        since = f" (non-finite since iteration {first})" if first is not None and first != iteration else ""
        good = self._last_good(trainer)
        kept = f"the last good checkpoint is kept: {good}" if good else "no checkpoint had been written yet"
        if self.action == "stop" or good is None or self.rollbacks >= self.max_rollbacks:
            reason = f" after {self.rollbacks} rollbacks" if self.rollbacks else ""
            raise DivergenceError(
                f"training diverged at iteration {iteration}{since}{reason}: {what}; {kept}"
            )
        self.rollbacks += 1
        ckpt = load_checkpoint(good)
        pl_module.load_state_dict(ckpt["state_dict"])
        pl_module.on_load_checkpoint(ckpt)
        for optimizer, state in zip(trainer.optimizers, ckpt["optimizer_states"], strict=True):
            optimizer.load_state_dict(state)
            for group in optimizer.param_groups:
                group["lr"] *= self.lr_factor**self.rollbacks
        log.warning(
            "training diverged at iteration %d%s (%s); rolled back to %s with learning rates x%g",
            iteration,
            since,
            what,
            good,
            self.lr_factor**self.rollbacks,
        )

"""``last.ckpt`` every N training iterations as well as every epoch: the mid-epoch resume point.

Lightning's ``every_n_train_steps`` counts ``trainer.global_step``, which under manual
optimization advances once per optimizer step: twice per GAN iteration, more with
``n_critic > 1`` or with CycleGAN's four networks, so "every 100 steps" would mean a different
number of iterations per scheme. :class:`IterationCheckpoint` counts the scheme's own
``iteration`` (one D+G step, the x-axis of every logged value) instead.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from ganforge.config import ConfigError


class IterationCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that also saves every ``every_n_iters`` training iterations.

    The save inside an epoch writes the same file as the epoch-end save (``last.ckpt`` in the
    default config) through the trainer's checkpoint I/O (atomic in ganforge-train). It is left
    out at an epoch's last batch, where the epoch-end save follows with the epoch's scheduler
    step, and it never makes ModelCheckpoint skip that epoch-end save.

    Args:
        every_n_iters: save after every this many iterations (``pl_module.iteration``);
            ``None`` saves at epoch ends only.
        **kwargs: ``ModelCheckpoint`` arguments (``every_n_train_steps`` is refused: it counts
            optimizer steps).
    """

    def __init__(self, every_n_iters: int | None = None, **kwargs: Any):
        if every_n_iters is not None and (isinstance(every_n_iters, bool) or int(every_n_iters) < 1):
            raise ConfigError(
                f"callbacks.last_checkpoint.every_n_iters must be a positive integer or null; got {every_n_iters}"
            )
        if kwargs.get("every_n_train_steps"):
            raise ConfigError(
                "callbacks.last_checkpoint.every_n_train_steps counts optimizer steps (2 or more per "
                "iteration under manual optimization); set callbacks.last_checkpoint.every_n_iters instead"
            )
        super().__init__(**kwargs)
        self.every_n_iters = int(every_n_iters) if every_n_iters is not None else None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.every_n_iters or pl_module.iteration % self.every_n_iters:
            return
        if batch_idx + 1 >= trainer.num_training_batches or trainer.should_stop:
            return  # the epoch-end (or end-of-training) save follows
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            return  # a metric-ranked copy waits for the metric
        last_step = self._last_global_step_saved
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
        # ModelCheckpoint skips a save at an already-saved global_step; the epoch-end save must
        # still run after this one to record the epoch's end (epoch schedulers, loop state).
        self._last_global_step_saved = last_step

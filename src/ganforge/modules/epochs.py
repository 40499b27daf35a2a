"""Epoch hooks shared by every ganforge training scheme.

The data order and every random draw depend only on (run seed, epoch, rank), so a run resumed
at an epoch boundary sees what an uninterrupted run sees; per-epoch LR schedulers are stepped by
the module, as manual optimization requires.
"""

from __future__ import annotations

from ganforge.optim import step_schedulers
from ganforge.utils.seeding import reseed_epoch


class SeededEpochs:
    """Mixin for a ``LightningModule`` with an ``optimizer_cfg`` (see :func:`ganforge.optim.step_schedulers`)."""

    def on_train_epoch_start(self) -> None:
        # Lightning's own epoch count for samplers differs after a restart; the data order
        # must follow the epoch number itself.
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            reseed_epoch(self.current_epoch, self.global_rank)

    def on_train_epoch_end(self) -> None:
        step_schedulers(self, self.optimizer_cfg, "epoch")

"""The base every ganforge training scheme builds on: what schemes share, written once.

A training scheme is a ``LightningModule`` with manual optimization that trains generator(s)
against discriminator(s). :class:`TrainingScheme` owns what every scheme needs the same way:

* the counters: ``iteration`` (training batches, the x-axis of every logged value) and
  ``g_steps`` (generator steps); Lightning's ``trainer.global_step`` counts the steps of every
  optimizer and is not used;
* ``last_losses`` (read by the divergence guard) and ``run_config`` (the resolved config);
* the end of every step: per-iteration LR schedulers, ``max_iters``, and handing the step's values
  to the loggers on logging steps only;
* seeded epochs: the data order and every random draw depend only on (run seed, epoch, rank),
  so a run resumed at an epoch boundary sees what an uninterrupted run sees (inside an epoch,
  the training loader's checkpointed state, :class:`ganforge.data.base.ResumableLoader`, carries
  its place and the random states on);
* checkpoints: the counters, the config and the scheme's name are *merged* into
  ``checkpoint["ganforge"]`` (callbacks such as the metrics store their entries there too);
* gradient clipping after AMP unscaling;
* the speed switches ``model.channels_last`` and ``model.compile`` (:meth:`apply_speed_switches`).

A scheme implements :meth:`train_step` (one iteration's optimizer steps, returning the values to
log), :meth:`configure_optimizers`, :meth:`metric_fakes` and :meth:`check_compatible`, and sets
:attr:`scheme`. What callbacks read is typed in :mod:`ganforge.modules.contract`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import torch
from pytorch_lightning import LightningModule
from torch import nn

from ganforge.data.base import ResumableLoader
from ganforge.optim import step_schedulers
from ganforge.utils.seeding import (
    process_count,
    process_rank,
    reseed_epoch,
    rng_states_by_rank,
    set_rng_state,
)


class TrainingScheme(LightningModule):
    """Base class of the training schemes (GAN, CycleGAN, pix2pix, ...).

    Args:
        optimizer: ``{"generator": partial, "discriminator": partial}`` of torch optimizers and
            optionally ``"scheduler"`` (a partial LR scheduler applied to both) with
            ``"scheduler_interval"`` (``"epoch"`` or ``"iteration"``).
        max_iters: stop after this many iterations (training batches); ``None`` = no limit.
        grad_clip: max gradient norm of every optimizer step; ``None`` disables clipping.
        channels_last: use the channels-last memory format for the networks and their image inputs.
        compile: ``torch.compile`` the networks' forward passes (in place, so parameter names and
            checkpoints are unchanged): ``True`` for the default backend (inductor) or a backend
            name such as ``"aot_eager"``.
    """

    scheme: ClassVar[str] = "scheme"  # the name checkpoints record

    def __init__(
        self,
        optimizer: Mapping[str, Any],
        max_iters: int | None = None,
        grad_clip: float | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.optimizer_cfg = dict(optimizer)
        self.max_iters, self.grad_clip = max_iters, grad_clip
        self.channels_last, self.compile_networks = channels_last, compile
        self.iteration = 0
        self.g_steps = 0
        self._resume_rng: list | None = None  # random states of a checkpoint, for loaders that keep none
        self.run_config: dict | None = None
        self.last_losses: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- what a scheme implements
    def train_step(self, batch: Any) -> tuple[dict[str, torch.Tensor], int]:
        """One iteration's optimizer steps; returns the values to log and the batch size."""
        raise NotImplementedError

    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule: Any = None
    ) -> Iterator[torch.Tensor]:
        """Generated images for quality metrics (see :class:`ganforge.modules.contract.Scheme`)."""
        raise NotImplementedError

    def check_compatible(self, datamodule: Any) -> None:
        """Refuse data this scheme cannot train on, before training (raises ``ConfigError``)."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Entries the scheme adds to ``checkpoint["ganforge"]`` beside the shared ones."""
        return {}

    # ----------------------------------------------------------------- speed switches
    def format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the networks use."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def apply_speed_switches(self, networks: Iterable[nn.Module], compiled: Iterable[nn.Module]) -> None:
        """Put ``networks`` in the channels-last format (``channels_last``) and compile ``compiled``
        in place, once (``compile``). Call it from ``setup``, before the strategy wraps the module:
        DDP's gradient buckets take the weights' layout."""
        if self.channels_last:
            for net in networks:
                net.to(memory_format=torch.channels_last)
        if self.compile_networks and not getattr(self, "_compiled", False):
            backend = self.compile_networks if isinstance(self.compile_networks, str) else "inductor"
            for net in compiled:
                net.compile(backend=backend)
            self._compiled = True

    # ----------------------------------------------------------------- the shared step
    def training_step(self, batch: Any, batch_idx: int) -> None:
        logs, n = self.train_step(batch)
        self.end_step(logs, n, batch_idx)

    def step_optimizer(self, optimizer, loss: torch.Tensor) -> None:
        """Zero, backpropagate ``loss`` and step ``optimizer`` (a ``LightningOptimizer``: AMP and DDP apply)."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def end_step(self, logs: dict[str, torch.Tensor], n: int, batch_idx: int) -> None:
        """Bookkeeping after an iteration: losses for the guard, counters, schedulers, stop, logging."""
        self.last_losses = {k: v for k, v in logs.items() if k.endswith("loss")}
        self.iteration += 1
        step_schedulers(self, self.optimizer_cfg, "iteration")
        if self.max_iters is not None and self.iteration >= self.max_iters:
            self.trainer.should_stop = True
        self.log_step(logs, n, batch_idx)

    def progress(self) -> float:
        """Share of training done, in [0, 1]: over ``max_iters``, else over ``max_epochs``' batches
        (what loss-weight schedules read); 0 when neither bounds the run."""
        total = self.max_iters
        trainer = self._trainer
        if total is None and trainer is not None and (trainer.max_epochs or -1) > 0:
            total = trainer.max_epochs * trainer.num_training_batches
        if not total or total == float("inf"):
            return 0.0
        return min(1.0, self.iteration / total)

    def is_logging_step(self, batch_idx: int) -> bool:
        """Whether the loggers write this iteration: every ``trainer.log_every_n_steps`` iterations,
        at an epoch's last batch (the run's final values) and when training is about to stop."""
        trainer = self.trainer
        every = trainer.log_every_n_steps
        last = batch_idx + 1 >= trainer.num_training_batches or trainer.should_stop
        return last or bool(every and self.iteration % every == 0)

    def log_step(self, logs: dict[str, torch.Tensor], n: int, batch_idx: int) -> None:
        """Hand the step's values to Lightning only where they are read.

        ``self.log`` costs ~0.6 ms a call on a CPU: logging every step took ~10 % of the default
        run's step time. The progress bar's losses (``train/d_loss`` and, when logged,
        ``train/g_loss``) are refreshed on the same steps.
        """
        if not self.is_logging_step(batch_idx):
            return
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        if self.trainer.progress_bar_callback is not None:
            shown = {name: logs[f"train/{name}"] for name in ("d_loss", "g_loss") if f"train/{name}" in logs}
            self.log_dict(shown, prog_bar=True, logger=False, on_step=True, on_epoch=False, batch_size=n)

    def on_before_optimizer_step(self, optimizer) -> None:
        # Called by Lightning after AMP unscaling, so clipping sees true gradient norms.
        if self.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    # ----------------------------------------------------------------- seeded epochs
    def on_train_epoch_start(self) -> None:
        # Lightning's own epoch count for samplers differs after a restart; the data order
        # must follow the epoch number itself.
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        resumed, self._resume_rng = self._resume_rng, None
        if batch_idx == 0:
            reseed_epoch(self.current_epoch, self.global_rank)
        elif resumed and len(resumed) == process_count() and not self._loader_keeps_rng():
            set_rng_state(resumed[process_rank()])

    def _loader_keeps_rng(self) -> bool:
        """Whether the training loader checkpoints and restores the random states itself.

        ganforge's own loaders do, as they hand out the first resumed batch; for a loader that
        keeps only its position (LitData's) the scheme saves them and restores them at the first
        step after a resume."""
        return isinstance(self.trainer.train_dataloader, ResumableLoader)

    def on_train_epoch_end(self) -> None:
        step_schedulers(self, self.optimizer_cfg, "epoch")

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Merge, never replace: callbacks (the metrics protocol and values) store entries here first.
        state = checkpoint.setdefault("ganforge", {})
        state.update(
            {
                "config": self.run_config,
                "iteration": self.iteration,
                "g_steps": self.g_steps,
                "scheme": self.scheme,
                **self.checkpoint_state(),
            }
        )
        if not self._loader_keeps_rng():  # gathered once per save: the loader's state holds them otherwise
            state["rng"] = rng_states_by_rank()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganforge", {})
        self.iteration = int(state.get("iteration", 0))
        self.g_steps = int(state.get("g_steps", 0))
        self._resume_rng = state.get("rng")

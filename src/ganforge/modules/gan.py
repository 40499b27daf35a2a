"""Unconditional and class-conditional GAN training with manual optimization.

One :class:`GANModule` trains every architecture and loss: networks, objective and
optimizers are injected from the config. Per training batch it takes one discriminator
step, and every ``n_critic``-th batch also one generator step followed by an update of the
exponential-moving-average (EMA) generator, which is the one used for every sample,
evaluation and export.

Counters: ``self.iteration`` counts training batches (= discriminator steps) and is the
x-axis of every logged value; ``self.g_steps`` counts generator steps. Lightning's
``trainer.global_step`` counts optimizer steps of both networks and is not used.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch import nn

from ganforge.losses.objective import GANObjective
from ganforge.modules.ema import ema_beta, ema_update
from ganforge.utils.seeding import run_seed


class GANModule(LightningModule):
    """Trains a generator against a discriminator.

    Args:
        generator: maps ``(z, labels)`` to images.
        discriminator: maps ``(images, labels)`` to one logit per image.
        loss: the adversarial objective (losses, ``n_critic``, penalties).
        optimizer: ``{"generator": partial, "discriminator": partial}`` of torch optimizers
            and optionally ``"scheduler"``, a partial LR scheduler applied to both, stepped
            every epoch or every iteration (``"scheduler_interval"``).
        latent_dim: size of the noise vector.
        num_classes: classes for conditional generation; 0 for unconditional.
        ema_decay: decay of the EMA generator (ramped up over the first steps).
        grad_clip: max gradient norm for both networks; ``None`` disables clipping.
        n_fixed_samples: size of the fixed-noise sample grid.
        max_iters: stop after this many iterations (training batches); ``None`` = no limit.
        channels_last: use the channels-last memory format (faster convolutions on CPU).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANObjective,
        optimizer: Mapping[str, Any],
        latent_dim: int = 100,
        num_classes: int = 0,
        ema_decay: float = 0.999,
        grad_clip: float | None = None,
        n_fixed_samples: int = 64,
        max_iters: int | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.automatic_optimization = False
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must be in [0, 1); got {ema_decay}")
        self.generator, self.discriminator, self.objective = generator, discriminator, loss
        self.generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.optimizer_cfg = dict(optimizer)
        self.latent_dim, self.num_classes, self.ema_decay = latent_dim, num_classes, ema_decay
        self.grad_clip, self.max_iters, self.channels_last = grad_clip, max_iters, channels_last
        self.iteration = 0
        self.g_steps = 0
        self.run_config: dict | None = None  # the resolved run config, stored in every checkpoint
        self.last_losses: dict[str, torch.Tensor] = {}  # read by the divergence guard
        noise_gen = torch.Generator().manual_seed(1234)
        self.register_buffer("fixed_noise", torch.randn(n_fixed_samples, latent_dim, generator=noise_gen))
        fixed_labels = torch.arange(n_fixed_samples) % max(num_classes, 1)
        self.register_buffer("fixed_labels", fixed_labels)

    # ----------------------------------------------------------------- sampling
    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal latent vectors on the module's device."""
        return torch.randn(n, self.latent_dim, device=self.device, generator=generator)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Uniform class labels for conditional models, ``None`` otherwise."""
        if self.num_classes == 0:
            return None
        return torch.randint(0, self.num_classes, (n,), device=self.device, generator=generator)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        """Images in [-1, 1] from latents (and labels), by the EMA generator by default."""
        net = self.generator_ema if ema else self.generator
        return net(z, labels).float()

    # ----------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        opt_g = self.optimizer_cfg["generator"](self.generator.parameters())
        opt_d = self.optimizer_cfg["discriminator"](self.discriminator.parameters())
        scheduler: Callable | None = self.optimizer_cfg.get("scheduler")
        if scheduler is None:
            return [opt_g, opt_d]
        return [opt_g, opt_d], [scheduler(opt_g), scheduler(opt_d)]

    def _step(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()

    def on_before_optimizer_step(self, optimizer) -> None:
        # Called by Lightning after AMP unscaling, so clipping sees true gradient norms.
        if self.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def on_fit_start(self) -> None:
        if self.channels_last:
            for net in (self.generator, self.discriminator, self.generator_ema):
                net.to(memory_format=torch.channels_last)

    # ----------------------------------------------------------------- training
    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        real = self._format(real)
        labels = labels if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        n = real.shape[0]

        # Discriminator step.
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake_labels = self.sample_labels(n)
            fake = self._format(self.generator(self.sample_noise(n), fake_labels))
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake, fake_labels)
        d_loss = self.objective.d_loss(real_logits, fake_logits)
        logs = {"train/d_loss_adv": d_loss.detach()}
        for name, penalty in self.objective.penalties.items():
            if self.iteration % penalty.every == 0:
                value = penalty.fn(self.discriminator, real, fake, labels=labels, fake_labels=fake_labels)
                d_loss = d_loss + penalty.weight * penalty.every * value
                logs[f"train/{name}"] = value.detach()
        self._step(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)
        logs.update(self._d_diagnostics(real_logits.detach(), fake_logits.detach()))
        logs["train/d_loss"] = d_loss.detach()

        # Generator step every n_critic batches.
        if (self.iteration + 1) % self.objective.n_critic == 0:
            self.toggle_optimizer(opt_g)
            gen_labels = self.sample_labels(n)
            fake = self._format(self.generator(self.sample_noise(n), gen_labels))
            fake_logits = self.discriminator(fake, gen_labels)
            real_logits_g = self.discriminator(real, labels) if self.objective.g_needs_real else None
            g_loss = self.objective.g_loss(fake_logits, real_logits_g)
            self._step(opt_g, g_loss)
            self.untoggle_optimizer(opt_g)
            self.g_steps += 1
            ema_update(self.generator_ema, self.generator, ema_beta(self.ema_decay, self.g_steps))
            logs["train/g_loss"] = g_loss.detach()

        self.last_losses = {k: v for k, v in logs.items() if k.endswith("loss")}
        self.iteration += 1
        self._step_schedulers("iteration")
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        self.log_dict(
            {
                "d_loss": logs["train/d_loss"],
                **({"g_loss": logs["train/g_loss"]} if "train/g_loss" in logs else {}),
            },
            prog_bar=True,
            logger=False,
            on_step=True,
            on_epoch=False,
            batch_size=n,
        )
        if self.max_iters is not None and self.iteration >= self.max_iters:
            self.trainer.should_stop = True

    def _d_diagnostics(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's mean output and accuracy on the real and the generated batch."""
        threshold = self.objective.threshold
        if threshold is None:
            threshold = 0.5 * (real_logits.mean() + fake_logits.mean())
        return {
            "train/d_real": real_logits.mean(),
            "train/d_fake": fake_logits.mean(),
            "train/d_acc_real": (real_logits > threshold).float().mean(),
            "train/d_acc_fake": (fake_logits < threshold).float().mean(),
        }

    def _step_schedulers(self, interval: str) -> None:
        if self.optimizer_cfg.get("scheduler") is None:
            return
        if self.optimizer_cfg.get("scheduler_interval", "epoch") != interval:
            return
        for scheduler in self.lr_schedulers():
            scheduler.step()

    def on_train_epoch_start(self) -> None:
        # Lightning's own epoch count for samplers differs after a restart; the data order
        # must follow the epoch number itself.
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            # Random draws depend only on (run seed, epoch, rank), reseeded once the epoch's first
            # batch is in hand: a run resumed at an epoch boundary draws what an uninterrupted one does.
            seed = (run_seed() * 1_000_003 + self.current_epoch * 1_009 + self.global_rank) % 2**32
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    def on_train_epoch_end(self) -> None:
        self._step_schedulers("epoch")

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx: int) -> None:
        """D's accuracy on held-out real images: falling values mean D memorises its training set."""
        real, labels = batch
        keep = real.shape[0] - real.shape[0] % getattr(self.discriminator, "pack", 1)  # whole packs only
        if keep == 0:
            return
        real, labels = real[:keep], labels[:keep]
        logits = self.discriminator(self._format(real), labels if self.num_classes else None)
        threshold = self.objective.threshold
        if threshold is None:
            return
        self.log(
            "val/d_acc_real", (logits > threshold).float().mean(), on_epoch=True, batch_size=real.shape[0]
        )

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganforge"] = {
            "config": self.run_config,
            "iteration": self.iteration,
            "g_steps": self.g_steps,
            "scheme": "gan",
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganforge", {})
        self.iteration = int(state.get("iteration", 0))
        self.g_steps = int(state.get("g_steps", 0))

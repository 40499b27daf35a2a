"""Unconditional and class-conditional GAN training with manual optimization.

One :class:`GANModule` trains every architecture and loss: networks, objective and
optimizers are injected from the config. Per training batch it takes one discriminator
step, and every ``n_critic``-th batch also one generator step followed by an update of the
exponential-moving-average (EMA) generator, which is the one used for every sample,
evaluation and export.

Counters: ``self.iteration`` counts training batches (= discriminator steps) and is the
x-axis of every logged value; ``self.g_steps`` counts generator steps. Lightning's
``trainer.global_step`` counts optimizer steps of both networks and is not used.

Augmentation (DiffAugment, ADA) sits in front of D for every image it sees, real and fake,
in both steps; penalties differentiate D behind the augmentation with respect to the clean
images, as stylegan2-ada does. A discriminator with an auxiliary classifier (ACGAN) returns
``(logits, class_logits)``; its cross-entropy is then added to both losses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from pytorch_lightning import LightningModule
from torch import nn

from ganforge.losses.adversarial import aux_class_loss
from ganforge.losses.objective import GANObjective
from ganforge.modules.ema import ema_beta, ema_update
from ganforge.modules.scheme import SchemeHooks
from ganforge.optim import build_gan_optimizers, step_schedulers


class GANModule(SchemeHooks, LightningModule):
    """Trains a generator against a discriminator.

    Args:
        generator: maps ``(z, labels)`` to images.
        discriminator: maps ``(images, labels)`` to one logit per image, or to
            ``(logits, class_logits)`` when it has an auxiliary classifier (ACGAN).
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
        augment: augmentation applied to every D input (real and fake, D and G steps);
            one with an ``update(real_logits)`` method (ADA) is updated after each D step.
        compile: ``torch.compile`` the generator's and discriminator's forward passes (in place,
            so parameter names and checkpoints are unchanged): ``True`` for the default backend
            (inductor) or a backend name such as ``"aot_eager"``; pays off on long GPU runs.
        reuse_fake: on iterations with a G step, train G on the batch D just saw (one G forward
            per iteration instead of two); ``False`` draws a fresh batch for G.
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
        augment: nn.Module | None = None,
        compile: bool | str = False,
        reuse_fake: bool = False,
    ):
        super().__init__()
        self.automatic_optimization = False
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must be in [0, 1); got {ema_decay}")
        self.generator, self.discriminator, self.objective = generator, discriminator, loss
        self.generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.augment = augment
        self.optimizer_cfg = dict(optimizer)
        self.latent_dim, self.num_classes, self.ema_decay = latent_dim, num_classes, ema_decay
        self.grad_clip, self.max_iters, self.channels_last = grad_clip, max_iters, channels_last
        self.compile_networks, self.reuse_fake = compile, reuse_fake
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

    @torch.no_grad()
    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule=None
    ) -> Iterator[torch.Tensor]:
        """Batches of EMA samples for metrics: sample ``i`` depends on ``(seed, i)`` alone and this
        rank yields indices ``rank, rank + world_size, ...``, so the ranks' union is the 1-process set.
        Conditional models draw label ``i % num_classes``; ``datamodule`` is not needed (a
        translation module reads its inputs from it)."""
        z_all = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        indices = torch.arange(rank, n, world_size)
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            labels = (idx % self.num_classes).to(self.device) if self.num_classes else None
            yield self.generate(z_all[idx].to(self.device), labels)

    # ----------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        trainer = self._trainer  # None when called outside a fit
        clips_under_fp16_amp = (
            bool(self.grad_clip) and trainer is not None and trainer.precision in ("16-mixed", "16")
        )
        return build_gan_optimizers(
            self.optimizer_cfg,
            self.generator.parameters(),
            self.discriminator.parameters(),
            allow_fused=not clips_under_fp16_amp,
        )

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

    def setup(self, stage: str) -> None:
        # Before the strategy wraps the module: DDP's gradient buckets take the weights' layout.
        if self.channels_last:
            for net in (self.generator, self.discriminator, self.generator_ema):
                net.to(memory_format=torch.channels_last)
        if self.compile_networks and not getattr(self, "_compiled", False):
            backend = self.compile_networks if isinstance(self.compile_networks, str) else "inductor"
            self.generator.compile(backend=backend)
            self.discriminator.compile(backend=backend)
            self._compiled = True

    # ----------------------------------------------------------------- training
    def discriminate(
        self, x: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's ``(logits, class_logits or None)`` on ``x`` behind the augmentation, if any."""
        out = self.discriminator(self.augment(x) if self.augment is not None else x, labels)
        return out if isinstance(out, tuple) else (out, None)

    def _penalty_critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.discriminate(x, labels)[0]

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch
        real = self._format(real)
        labels = labels if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        n = real.shape[0]

        g_step = (self.iteration + 1) % self.objective.n_critic == 0
        fake_labels = self.sample_labels(n)
        z = self.sample_noise(n)
        fake_g = None
        if self.reuse_fake and g_step:
            # One G forward serves both steps (PyTorch's DCGAN example): D trains on the detached
            # batch, G's step below backpropagates through the same batch.
            fake_g = self._format(self.generator(z, fake_labels))
            fake = fake_g.detach()
        else:
            with torch.no_grad():
                fake = self._format(self.generator(z, fake_labels))

        # Discriminator step.
        self.toggle_optimizer(opt_d)
        real_logits, real_classes = self.discriminate(real, labels)
        fake_logits, fake_classes = self.discriminate(fake, fake_labels)
        d_loss = self.objective.d_loss(real_logits, fake_logits)
        logs = {"train/d_loss_adv": d_loss.detach()}
        if real_classes is not None:
            aux = aux_class_loss(real_classes, labels) + aux_class_loss(fake_classes, fake_labels)
            d_loss = d_loss + self.objective.aux_weight * aux
            logs["train/d_loss_aux"] = aux.detach()
        for name, penalty in self.objective.penalties.items():
            if self.iteration % penalty.every == 0:
                value = penalty.fn(self._penalty_critic, real, fake, labels=labels, fake_labels=fake_labels)
                d_loss = d_loss + penalty.weight * penalty.every * value
                logs[f"train/{name}"] = value.detach()
        self._step(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)
        logs.update(self._d_diagnostics(real_logits.detach(), fake_logits.detach()))
        if hasattr(self.augment, "update"):
            self.augment.update(real_logits.detach())
            logs["train/ada_p"], logs["train/ada_rt"] = self.augment.p.clone(), self.augment.rt.clone()
        logs["train/d_loss"] = d_loss.detach()

        # Generator step every n_critic batches.
        if g_step:
            self.toggle_optimizer(opt_g)
            gen_labels = fake_labels
            if fake_g is None:
                gen_labels = self.sample_labels(n)
                fake_g = self._format(self.generator(self.sample_noise(n), gen_labels))
            fake_logits, fake_classes = self.discriminate(fake_g, gen_labels)
            real_logits_g = self.discriminate(real, labels)[0] if self.objective.g_needs_real else None
            k = self.objective.topk_count(len(fake_logits), self.current_epoch)
            if k < len(fake_logits):  # top-k training: G learns only from its k most realistic samples
                keep = fake_logits.detach().reshape(len(fake_logits), -1).mean(1).topk(k).indices
                fake_logits = fake_logits[keep]
                real_logits_g = real_logits_g[keep] if real_logits_g is not None else None
                if fake_classes is not None:
                    fake_classes, gen_labels = fake_classes[keep], gen_labels[keep]
                logs["train/topk"] = torch.tensor(float(k))
            g_loss = self.objective.g_loss(fake_logits, real_logits_g)
            if fake_classes is not None:
                g_loss = g_loss + self.objective.aux_weight * aux_class_loss(fake_classes, gen_labels)
            self._step(opt_g, g_loss)
            self.untoggle_optimizer(opt_g)
            self.g_steps += 1
            ema_update(self.generator_ema, self.generator, ema_beta(self.ema_decay, self.g_steps))
            logs["train/g_loss"] = g_loss.detach()

        self.last_losses = {k: v for k, v in logs.items() if k.endswith("loss")}
        self.iteration += 1
        step_schedulers(self, self.optimizer_cfg, "iteration")
        if self.max_iters is not None and self.iteration >= self.max_iters:
            self.trainer.should_stop = True
        self._log_step(logs, n, batch_idx)

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

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx: int) -> None:
        """D's accuracy on held-out real images: falling values mean D memorises its training set."""
        real, labels = batch
        keep = real.shape[0] - real.shape[0] % getattr(self.discriminator, "pack", 1)  # whole packs only
        if keep == 0:
            return
        real, labels = real[:keep], labels[:keep]
        logits = self.discriminator(self._format(real), labels if self.num_classes else None)
        logits = logits[0] if isinstance(logits, tuple) else logits
        threshold = self.objective.threshold
        if threshold is None:
            return
        self.log(
            "val/d_acc_real",
            (logits > threshold).float().mean(),
            on_epoch=True,
            batch_size=real.shape[0],
            sync_dist=True,  # the mean over every process's share of the validation set
        )

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # update, not replace: callbacks (metrics protocol) store their entries here first
        checkpoint.setdefault("ganforge", {}).update(
            {"config": self.run_config, "iteration": self.iteration, "g_steps": self.g_steps, "scheme": "gan"}
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganforge", {})
        self.iteration = int(state.get("iteration", 0))
        self.g_steps = int(state.get("g_steps", 0))

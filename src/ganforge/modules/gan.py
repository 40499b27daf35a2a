"""Unconditional and class-conditional GAN training with manual optimization.

One :class:`GANModule` trains every architecture and loss: networks, objective and
optimizers are injected from the config. An iteration is a composition of phases
(:mod:`ganforge.modules.phases`): the discriminator's due phases (``D main``, lazy ``D reg``)
share one D step, then every ``n_critic``-th iteration the generator's (``G main``, lazy
``G reg``) share one G step, followed by an update of the exponential-moving-average (EMA)
generator, which is the one used for every sample, evaluation and export.
The EMA decay is ``ema_decay``, or, with ``ema_half_life_kimg``, stylegan2-ada's rule: a half-life
in thousands of images, ``beta = 0.5 ** (images per G step / (ema_half_life_kimg * 1000))``.

Truncation (Karras et al. 2019): ``generate``, ``fixed_samples`` and ``metric_fakes`` take
``truncation_psi``, which pulls ``w`` toward the mapping network's running average (generators
with a mapping network only, such as StyleGAN2's); 1 leaves samples as they are.

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
from torch import nn

from ganforge.config import ConfigError, check_value
from ganforge.losses.objective import GANObjective
from ganforge.losses.translation import TranslationObjective
from ganforge.modules.ema import ema_beta, ema_update, half_life_beta
from ganforge.modules.phases import DISCRIMINATOR, GENERATOR, IterationBatch, build_phases
from ganforge.modules.scheme import TrainingScheme
from ganforge.optim import build_gan_optimizers
from ganforge.validation import check_truncation


class GANModule(TrainingScheme):
    """Trains a generator against a discriminator.

    Args:
        generator: maps ``(z, labels)`` to images.
        discriminator: maps ``(images, labels)`` to one logit per image (per pack), or to
            ``(logits, class_logits)`` when it has an auxiliary classifier (ACGAN).
        loss: the adversarial objective (losses, ``n_critic``, penalties).
        optimizer: see :class:`~ganforge.modules.scheme.TrainingScheme`.
        latent_dim: size of the noise vector.
        num_classes: classes for conditional generation; 0 for unconditional.
        ema_decay: decay of the EMA generator (ramped up over the first steps).
        ema_half_life_kimg: if set, the EMA's half-life in thousands of images (stylegan2-ada's
            ``ema_kimg``, 10 for StyleGAN2), which replaces ``ema_decay``.
        ema_rampup: with ``ema_half_life_kimg``, cap the half-life at ``ema_rampup`` times the images
            seen so far (stylegan2-ada's ``ema_rampup``, 0.05 for small data); ``None`` = no ramp.
        grad_clip: max gradient norm for both networks; ``None`` disables clipping.
        n_fixed_samples: size of the fixed-noise sample grid.
        max_iters: stop after this many iterations (training batches); ``None`` = no limit.
        channels_last: use the channels-last memory format (faster convolutions on CPU).
        augment: augmentation applied to every D input (real and fake, D and G steps); its
            ``after_d_step(real_logits)`` (ADA's controller) runs after each D step.
        compile: ``torch.compile`` the generator's and discriminator's forward passes (in place,
            so parameter names and checkpoints are unchanged): ``True`` for the default backend
            (inductor) or a backend name such as ``"aot_eager"``; pays off on long GPU runs.
        reuse_fake: on iterations with a G step, train G on the batch D just saw (one G forward
            per iteration instead of two); ``False`` draws a fresh batch for G.
    """

    scheme = "gan"

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
        ema_half_life_kimg: float | None = None,
        ema_rampup: float | None = None,
    ):
        super().__init__(
            optimizer, max_iters=max_iters, grad_clip=grad_clip, channels_last=channels_last, compile=compile
        )
        if not isinstance(loss, GANObjective):
            raise ConfigError(
                f"GAN models need a GAN loss (loss=ns, hinge, lsgan, minimax, wgan_gp or r3gan); got "
                f"{type(loss).__name__}"
                + (f", which trains {loss.models}" if isinstance(loss, TranslationObjective) else "")
            )
        check_value("model.ema_decay", ema_decay)
        check_value("model.ema_half_life_kimg", ema_half_life_kimg)
        check_value("model.ema_rampup", ema_rampup)
        if ema_decay is None:
            raise ConfigError(
                "model.ema_decay must be a number in [0, 1) for GAN models (their samples come from the average)"
            )
        self.generator, self.discriminator, self.objective = generator, discriminator, loss
        self.generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.augment = augment
        self.latent_dim, self.num_classes, self.ema_decay = latent_dim, num_classes, ema_decay
        self.ema_half_life_kimg, self.ema_rampup = ema_half_life_kimg, ema_rampup
        self.metric_truncation_psi = 1.0  # truncation of metric samples (metrics.truncation_psi)
        # Generator-side regularizers with state (path length's running mean) follow the device
        # and the checkpoint; an empty dict adds no keys to other models' checkpoints.
        self.g_regularizers = nn.ModuleDict(
            {name: p.fn for name, p in loss.g_penalties.items() if isinstance(p.fn, nn.Module)}
        )
        self.reuse_fake = reuse_fake
        self.phases = build_phases(loss)
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
    def generate(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        ema: bool = True,
        truncation_psi: float = 1.0,
    ) -> torch.Tensor:
        """Images in [-1, 1] from latents (and labels), by the EMA generator by default;
        ``truncation_psi < 1`` pulls ``w`` toward its average (mapping-network generators only)."""
        net = self.generator_ema if ema else self.generator
        if truncation_psi == 1:
            return net(z, labels).float()
        check_truncation(net, truncation_psi)
        return net(z, labels, truncation_psi=truncation_psi).float()

    def fixed_samples(self, truncation_psi: float = 1.0) -> torch.Tensor:
        """The sample grid's images: the EMA generator on the fixed noise (and fixed labels)."""
        labels = self.fixed_labels if self.num_classes else None
        return self.generate(self.fixed_noise, labels, truncation_psi=truncation_psi)

    @torch.no_grad()
    def metric_fakes(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        datamodule=None,
        truncation_psi: float | None = None,
    ) -> Iterator[torch.Tensor]:
        """Batches of EMA samples for metrics: sample ``i`` depends on ``(seed, i)`` alone and this
        rank yields indices ``rank, rank + world_size, ...``, so the ranks' union is the 1-process set.
        Conditional models draw label ``i % num_classes``; ``datamodule`` is not needed;
        ``truncation_psi`` as in :meth:`generate`; ``None`` = :attr:`metric_truncation_psi`, which the
        metrics callback (``metrics.truncation_psi``) and ``ganforge-eval truncation_psi=`` set."""
        if truncation_psi is None:
            truncation_psi = self.metric_truncation_psi
        if truncation_psi != 1:
            check_truncation(self.generator_ema, truncation_psi)
        z_all = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        indices = torch.arange(rank, n, world_size)
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            labels = (idx % self.num_classes).to(self.device) if self.num_classes else None
            yield self.generate(z_all[idx].to(self.device, self.dtype), labels, truncation_psi=truncation_psi)

    # ----------------------------------------------------------------- set-up
    def check_compatible(self, datamodule) -> None:
        """Refuse two-domain data, and conditional models on data without (the same) classes."""
        name = getattr(datamodule, "name", type(datamodule).__name__)
        if getattr(datamodule, "paired", None) is not None:
            raise ConfigError(
                f"data '{name}' holds two image domains for translation; train it with model=cyclegan, pix2pix, cut or fastcut"
            )
        if not self.num_classes:
            return
        datamodule.setup("fit")  # the classes are known once the data is set up
        available = getattr(datamodule, "num_classes", 0)
        if not available:
            raise ConfigError(
                f"the model is conditional (model.num_classes={self.num_classes}) but data '{name}' has no labels; "
                "use an unconditional model or labeled data (e.g. data.class_subfolders=true for image_folder)"
            )
        if available != self.num_classes:
            raise ConfigError(
                f"model.num_classes={self.num_classes} but data '{name}' has {available} classes"
            )

    def configure_optimizers(self):
        trainer = self._trainer  # None when called outside a fit
        # Lightning refuses to clip for an optimizer that unscales itself (fused Adam) under AMP, 16 or bf16.
        clips_under_amp = bool(self.grad_clip) and trainer is not None and "mixed" in str(trainer.precision)
        return build_gan_optimizers(
            self.optimizer_cfg,
            self.generator.parameters(),
            self.discriminator.parameters(),
            allow_fused=not clips_under_amp,
        )

    @property
    def pack(self) -> int:
        """Samples per D input (PacGAN); 1 for a discriminator that judges single samples."""
        return int(getattr(self.discriminator, "pack", 1))

    def setup(self, stage: str) -> None:
        # PacGAN's batch: D judges data.batch_size packs, so the loader brings pack x as many reals
        # (and start_iteration generates as many fakes).
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "pack"):
            datamodule.pack = self.pack
        for penalty in self.objective.g_penalties.values():
            if hasattr(penalty.fn, "check_generator"):  # e.g. path length needs a mapping network
                penalty.fn.check_generator(self.generator)
        networks = (self.generator, self.discriminator)
        self.apply_speed_switches((*networks, self.generator_ema), compiled=networks)

    # ----------------------------------------------------------------- training
    def discriminate(
        self, x: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's ``(logits, class_logits or None)`` on ``x`` behind the augmentation, if any."""
        out = self.discriminator(self.augment(x) if self.augment is not None else x, labels)
        return out if isinstance(out, tuple) else (out, None)

    def penalty_critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's logits behind the augmentation: what D's penalties differentiate."""
        return self.discriminate(x, labels)[0]

    def g_step_due(self) -> bool:
        """Whether this iteration takes a generator step (every ``n_critic``-th)."""
        return (self.iteration + 1) % self.objective.n_critic == 0

    def start_iteration(self, real: torch.Tensor, labels: torch.Tensor | None) -> IterationBatch:
        """The generated batch D judges this iteration (kept attached to G when ``G main`` reuses it)."""
        n = real.shape[0]
        fake_labels = self.sample_labels(n)
        z = self.sample_noise(n)
        if self.reuse_fake and self.g_step_due():
            # One G forward serves both steps (PyTorch's DCGAN example): D trains on the detached
            # batch, G's step backpropagates through the same batch.
            fake_g = self.format(self.generator(z, fake_labels))
            return IterationBatch(real, labels, fake_g.detach(), fake_labels, fake_g=fake_g)
        with torch.no_grad():
            fake = self.format(self.generator(z, fake_labels))
        return IterationBatch(real, labels, fake, fake_labels)

    def run_phases(self, network: str, optimizer, batch: IterationBatch) -> torch.Tensor | None:
        """One optimizer step of ``network`` on the sum of its due phases' terms; ``None`` if none is due."""
        due = [phase for phase in self.phases if phase.network == network and phase.due(self)]
        if not due:
            return None
        self.toggle_optimizer(optimizer)
        loss = due[0].loss(self, batch)
        for phase in due[1:]:
            loss = loss + phase.loss(self, batch)
        self.step_optimizer(optimizer, loss)
        self.untoggle_optimizer(optimizer)
        return loss.detach()

    def train_step(self, batch) -> tuple[dict[str, torch.Tensor], int]:
        real, labels = batch
        step = self.start_iteration(self.format(real), labels if self.num_classes else None)
        opt_g, opt_d = self.optimizers()

        d_loss = self.run_phases(DISCRIMINATOR, opt_d, step)
        step.logs.update(self._d_diagnostics(step.real_logits, step.fake_logits))
        if self.augment is not None and hasattr(self.augment, "after_d_step"):
            step.logs.update(self.augment.after_d_step(step.real_logits, images=step.n))
        step.logs["train/d_loss"] = d_loss

        g_loss = self.run_phases(GENERATOR, opt_g, step)
        if g_loss is not None:
            self.g_steps += 1
            ema_update(self.generator_ema, self.generator, self._ema_beta(step.n))
            step.logs["train/g_loss"] = g_loss
        return step.logs, step.n

    def _ema_beta(self, batch_size: int) -> float:
        """This G step's EMA decay: the half-life rule (images of every process) or ``ema_decay``'s ramp."""
        if self.ema_half_life_kimg is None:
            return ema_beta(self.ema_decay, self.g_steps)
        world = self.trainer.world_size if self._trainer is not None else 1
        images = batch_size * world  # batch_size counts D's images (pack x the packs)
        return half_life_beta(images, self.ema_half_life_kimg, self.iteration * images, self.ema_rampup)

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
        keep = real.shape[0] - real.shape[0] % self.pack  # whole packs only
        threshold = self.objective.threshold
        if keep == 0 or threshold is None:
            return
        real, labels = real[:keep], labels[:keep]
        logits = self.discriminator(self.format(real), labels if self.num_classes else None)
        logits = logits[0] if isinstance(logits, tuple) else logits
        self.log(
            "val/d_acc_real",
            (logits > threshold).float().mean(),
            on_epoch=True,
            batch_size=real.shape[0],
            sync_dist=True,  # the mean over every process's share of the validation set
        )

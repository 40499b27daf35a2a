"""A test-only training scheme: the smallest GAN scheme, one D step and one G step per batch with
the configured loss, no EMA, no phases.

It is what ``README.md`` ("Extending ganforge") calls a new scheme: one module file (this one)
plus one YAML (``minimal.yaml`` beside it). It implements :class:`TrainingScheme`'s hooks and
:class:`ganforge.modules.contract.NoiseSampler`, so every default callback (checkpoints, sample
grids, mode metrics, divergence guard, hyperparameters) and the quality metrics work with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ganforge.losses.objective import GANObjective
from ganforge.modules.scheme import TrainingScheme
from ganforge.optim import build_gan_optimizers


class MinimalGANScheme(TrainingScheme):
    """Args: ``generator(z, labels)``, ``discriminator(x, labels)``, ``loss`` (its ``d_loss``/``g_loss``),
    ``optimizer``, ``latent_dim``, ``max_iters``."""

    scheme = "minimal_gan"

    def __init__(
        self, generator, discriminator, loss: GANObjective, optimizer, latent_dim=16, max_iters=None
    ):
        super().__init__(optimizer, max_iters=max_iters)
        self.generator, self.discriminator, self.objective = generator, discriminator, loss
        self.latent_dim, self.num_classes = latent_dim, 0
        self.register_buffer(
            "fixed_noise", torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(0))
        )

    def configure_optimizers(self):
        return build_gan_optimizers(
            self.optimizer_cfg, self.generator.parameters(), self.discriminator.parameters()
        )

    def train_step(self, batch) -> tuple[dict[str, torch.Tensor], int]:
        real, _ = batch
        n = real.shape[0]
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(n, self.latent_dim, device=self.device), None)
        self.toggle_optimizer(opt_d)
        d_loss = self.objective.d_loss(
            self.discriminator(real, None), self.discriminator(fake.detach(), None)
        )
        self.step_optimizer(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)
        self.toggle_optimizer(opt_g)
        g_loss = self.objective.g_loss(self.discriminator(fake, None), None)
        self.step_optimizer(opt_g, g_loss)
        self.untoggle_optimizer(opt_g)
        self.g_steps += 1
        return {"train/d_loss": d_loss.detach(), "train/g_loss": g_loss.detach()}, n

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, ema: bool = True) -> torch.Tensor:
        return self.generator(z.to(self.device), labels).float()

    def fixed_samples(self) -> torch.Tensor:
        return self.generate(self.fixed_noise)

    @torch.no_grad()
    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule=None
    ) -> Iterator[torch.Tensor]:
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))[rank::world_size]
        for start in range(0, len(z), batch_size):
            yield self.generate(z[start : start + batch_size])

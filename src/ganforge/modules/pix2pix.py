"""pix2pix (Isola et al. 2017, arXiv:1611.07004): paired translation with a conditional GAN.

One generator translates A -> B against a conditional PatchGAN that sees ``concat(B, A)``, with
an L1 loss to the paired target. Per batch: one discriminator step on the detached translation,
then one generator step, in the order of the reference code (``pix2pix_model.py``'s
``optimize_parameters``). The generator's dropout is the model's noise source and stays on at
test time, as in the paper (``model.generator.dropout_at_eval``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

from ganforge.losses.translation import l1_loss
from ganforge.modules.translation import TranslationScheme


class Pix2PixModule(TranslationScheme):
    """Trains a translator A -> B on paired images (arguments: :class:`TranslationScheme`)."""

    scheme = "pix2pix"
    paired_data = True
    conditional_discriminator = True

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        obj = self.objective
        warming_up = not self.steps_generators()
        with torch.no_grad() if warming_up else contextlib.nullcontext():
            fake_b = self.generator(real_a)
        # Discriminator first on the detached translation, then the generator, as in pix2pix's code.
        self.toggle_optimizer(opt_d)
        d_loss = obj.d_loss(self.discriminator(real_b, real_a), self.discriminator(fake_b.detach(), real_a))
        self.step_optimizer(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)
        if warming_up:  # the discriminator's warm-up: no generator step yet
            return {"train/d_loss": d_loss.detach()}, real_a.shape[0]
        self.toggle_optimizer(opt_g)
        g_adv = obj.g_loss(self.discriminator(fake_b, real_a))
        l1 = l1_loss(fake_b, real_b)
        logs = {"train/g_adv": g_adv.detach(), "train/l1": l1.detach()}
        g_loss = g_adv + obj.lambda_l1 * l1 + obj.priors(real_a, fake_b, logs)
        self.step_optimizer(opt_g, g_loss)
        self.untoggle_optimizer(opt_g)
        self.g_steps += 1
        logs.update({"train/g_loss": g_loss.detach(), "train/d_loss": d_loss.detach()})
        return logs, real_a.shape[0]

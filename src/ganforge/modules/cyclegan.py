"""CycleGAN (Zhu et al. 2017, arXiv:1703.10593): unpaired translation with cycle consistency.

Two generators, ``generator: A -> B`` and ``generator_ba: B -> A``, train against
``discriminator`` (judges B) and ``discriminator_a`` (judges A) with the adversarial loss, the
cycle-consistency loss ``||F(G(a)) - a||_1 + ||G(F(b)) - b||_1`` and the identity loss, and the
discriminators see a history pool of generated images. Per batch: one step of both generators
(one optimizer), then one of both discriminators, in the order of the reference code
(``cycle_gan_model.py``'s ``optimize_parameters``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ganforge.losses.translation import TranslationObjective, cycle_loss, identity_loss
from ganforge.modules.translation import TranslationScheme
from ganforge.utils.image_pool import ImagePool


class CycleGANModule(TranslationScheme):
    """Trains two translators between unpaired domains A and B.

    Args:
        generator: translates A -> B.
        generator_ba: translates B -> A.
        discriminator: judges B images.
        discriminator_a: judges A images.
        loss: the :class:`~ganforge.losses.translation.TranslationObjective` (``loss=cyclegan``).
        optimizer: see :class:`~ganforge.modules.scheme.TrainingScheme`.
        pool_size: generated images kept for the discriminators (CycleGAN: 50; 0 disables).
        max_iters: stop after this many training batches; ``None`` = no limit.
        channels_last, compile, ema_decay, augment, d_warmup_iters: see :class:`TranslationScheme`.
    """

    scheme = "cyclegan"
    directions = ("AtoB", "BtoA")

    def __init__(
        self,
        generator: nn.Module,
        generator_ba: nn.Module,
        discriminator: nn.Module,
        discriminator_a: nn.Module,
        loss: TranslationObjective,
        optimizer: Mapping[str, Any],
        pool_size: int = 50,
        max_iters: int | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        ema_decay: float | None = None,
        augment: nn.Module | None = None,
        d_warmup_iters: int = 0,
    ):
        switches = {
            "channels_last": channels_last,
            "compile": compile,
            "ema_decay": ema_decay,
            "augment": augment,
            "d_warmup_iters": d_warmup_iters,
        }
        super().__init__(generator, discriminator, loss, optimizer, max_iters=max_iters, **switches)
        self.generator_ba, self.discriminator_a = generator_ba, discriminator_a
        self.build_ema()  # the B -> A average, now that its translator exists
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)

    def checkpoint_state(self) -> dict[str, Any]:
        # The pools' images: without them a resumed run's discriminators would see a fresh history.
        return {"image_pools": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = checkpoint.get("ganforge", {}).get("image_pools")
        if pools:  # absent in checkpoints written before the pools were saved: they refill
            self.pool_a.load_state_dict(pools["a"])
            self.pool_b.load_state_dict(pools["b"])

    def generators(self) -> list[nn.Module]:
        return [self.generator, self.generator_ba]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator, self.discriminator_a]

    def trained_translator(self, direction: str) -> nn.Module:
        return self.generator_ba if direction == "BtoA" else super().trained_translator(direction)

    def panel_columns(self, real_a: torch.Tensor, real_b: torch.Tensor) -> list[torch.Tensor]:
        """``A | G(A) | F(G(A)) | B | F(B) | G(F(B))``."""
        fake_b, fake_a = self.translate(real_a), self.translate(real_b, "BtoA")
        return [real_a, fake_b, self.translate(fake_b, "BtoA"), real_b, fake_a, self.translate(fake_a)]

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        obj, judge = self.objective, self.judge
        g_ab, g_ba, d_b, d_a = self.generator, self.generator_ba, self.discriminator, self.discriminator_a
        logs: dict[str, torch.Tensor] = {}
        # Generators first (D frozen by toggle_optimizer), then the discriminators, as in the reference code.
        if self.steps_generators():
            fake_b, fake_a, logs = self.generator_step(real_a, real_b, opt_g)
        else:  # the discriminators' warm-up: translations of the untrained generators, no generator step
            with torch.no_grad():
                fake_b, fake_a = g_ab(real_a), g_ba(real_b)

        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        self.toggle_optimizer(opt_d)
        d_loss_b = obj.d_loss(judge(d_b, real_b), judge(d_b, pooled_b))
        d_loss_a = obj.d_loss(judge(d_a, real_a), judge(d_a, pooled_a))
        self.step_optimizer(opt_d, d_loss_a + d_loss_b)
        self.untoggle_optimizer(opt_d)
        logs.update({"train/d_loss_a": d_loss_a.detach(), "train/d_loss_b": d_loss_b.detach()})
        logs["train/d_loss"] = (d_loss_a + d_loss_b).detach()
        return logs, real_a.shape[0]

    def generator_step(self, real_a: torch.Tensor, real_b: torch.Tensor, opt_g) -> tuple:
        """Both generators' step (the discriminators frozen by ``toggle_optimizer``); returns the
        translations ``G(A)`` and ``F(B)`` and the values to log."""
        obj, judge = self.objective, self.judge
        g_ab, g_ba, d_b, d_a = self.generator, self.generator_ba, self.discriminator, self.discriminator_a
        self.toggle_optimizer(opt_g)
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        g_adv = obj.g_loss(judge(d_b, fake_b)) + obj.g_loss(judge(d_a, fake_a))
        cyc = cycle_loss(real_a, g_ba(fake_b)) + cycle_loss(real_b, g_ab(fake_a))
        g_loss = g_adv + obj.lambda_cycle * cyc
        logs = {"train/g_adv": g_adv.detach(), "train/cycle": cyc.detach()}
        if obj.lambda_identity > 0:
            idt = identity_loss(real_b, g_ab(real_b)) + identity_loss(real_a, g_ba(real_a))
            g_loss = g_loss + obj.lambda_cycle * obj.lambda_identity * idt
            logs["train/identity"] = idt.detach()
        g_loss = g_loss + obj.priors(real_a, fake_b, logs)
        self.step_optimizer(opt_g, g_loss)
        self.untoggle_optimizer(opt_g)
        self.g_steps += 1
        logs["train/g_loss"] = g_loss.detach()
        return fake_b, fake_a, logs

    def validate_more(self, real_a: torch.Tensor, fake_b: torch.Tensor) -> None:
        self.log(
            "val/cycle_a", cycle_loss(real_a, self.translate(fake_b, "BtoA")), batch_size=real_a.shape[0]
        )

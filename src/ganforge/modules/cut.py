"""CUT and FastCUT (Park et al. 2020, arXiv:2007.15651): one-sided unpaired translation.

One generator translates A -> B against a PatchGAN judging B, with PatchNCE in place of
CycleGAN's cycle: patches of G(a) must match the patches of ``a`` at the same place rather than
the other patches of ``a`` (:mod:`ganforge.losses.patchnce`). The features are the generator's own
encoder features at ``loss.nce_layers``, read by :meth:`ResnetTranslator.encode`; a two-layer MLP
head per layer projects them (the heads train with G, in G's optimizer: for Adam with the same
settings this equals the reference code's separate optimizer for them). CUT adds PatchNCE between
B and G(B) (``loss.nce_identity``); FastCUT drops it, weighs PatchNCE 10x and adds flip
equivariance. Per batch: one discriminator step on the detached translation, then one generator
step, in the order of the reference code (``cut_model.py``'s ``optimize_parameters``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ganforge.config import ConfigError
from ganforge.losses.patchnce import CUTObjective, PatchHeads, patch_nce_loss, sample_patch_ids
from ganforge.modules.translation import TranslationScheme


class CUTModule(TranslationScheme):
    """Trains a translator A -> B on unpaired images with PatchNCE (CUT, or FastCUT by the loss's settings).

    Args:
        generator: translates A -> B; must expose ``encode(x, points)`` and ``feature_channels(point)``
            (:class:`~ganforge.networks.resnet_translator.ResnetTranslator`).
        discriminator: a PatchGAN judging B images.
        loss: the :class:`~ganforge.losses.patchnce.CUTObjective` (``loss=cut`` / ``loss=fastcut``).
        optimizer: see :class:`~ganforge.modules.scheme.TrainingScheme`.
        head_width: units of the PatchNCE projection heads (the paper's ``netF_nc``: 256).
        max_iters: stop after this many training batches; ``None`` = no limit.
        channels_last, compile, ema_decay, augment, d_warmup_iters: see :class:`TranslationScheme`.
    """

    scheme = "cut"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: CUTObjective,
        optimizer: Mapping[str, Any],
        head_width: int = 256,
        max_iters: int | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        ema_decay: float | None = None,
        augment: nn.Module | None = None,
        d_warmup_iters: int = 0,
    ):
        if not isinstance(loss, CUTObjective):
            raise ConfigError(
                f"model=cut / model=fastcut needs loss=cut or loss=fastcut (PatchNCE); got {type(loss).__name__}"
            )
        if not (hasattr(generator, "encode") and hasattr(generator, "feature_channels")):
            raise ConfigError(
                "model=cut reads the generator's encoder features: model.generator must be the ResNet "
                f"translator (ganforge.networks.resnet_translator.ResnetTranslator); got {type(generator).__name__}"
            )
        if channels_last and compile:
            raise ConfigError(
                "model=cut / model=fastcut cannot combine model.compile with model.channels_last: the compiled "
                "PatchNCE backward fails on channels-last strides; use one of them"
            )
        switches = {
            "channels_last": channels_last,
            "compile": compile,
            "ema_decay": ema_decay,
            "augment": augment,
            "d_warmup_iters": d_warmup_iters,
        }
        super().__init__(generator, discriminator, loss, optimizer, max_iters=max_iters, **switches)
        try:
            channels = [generator.feature_channels(name) for name in loss.nce_layers]
        except ValueError as err:
            raise ConfigError(f"loss.nce_layers: {err}") from None
        self.heads = PatchHeads(channels, head_width)

    def generators(self) -> list[nn.Module]:
        return [self.generator, self.heads]  # the heads train with G (one Adam, G's settings)

    def panel_columns(self, real_a: torch.Tensor, real_b: torch.Tensor) -> list[torch.Tensor]:
        """``A | G(A) | B``, and ``| G(B)`` where the identity PatchNCE trains G(B) to keep B."""
        columns = super().panel_columns(real_a, real_b)
        return columns + [self.translate(real_b)] if self.objective.nce_identity else columns

    def nce_loss(self, source: torch.Tensor, translated: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between ``translated`` (queries) and ``source`` (keys), averaged over ``nce_layers``.

        The patch locations are drawn once per layer and shared by queries and keys. With ``flipped``
        the translation was made from the flipped source: its features are flipped back first.
        """
        obj = self.objective
        queries = self.generator.encode(translated, obj.nce_layers)
        if flipped:
            queries = [q.flip(3) for q in queries]
        with torch.no_grad():  # keys get no gradient (the reference detaches them)
            keys = self.generator.encode(source, obj.nce_layers)
            ids = sample_patch_ids(keys, obj.num_patches)
            keys = self.heads(keys, ids)
        queries = self.heads(queries, ids)
        n = source.shape[0]
        losses = [patch_nce_loss(q, k, n, obj.temperature) for q, k in zip(queries, keys, strict=True)]
        return torch.stack(losses).mean()

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        opt_g, opt_d = self.optimizers()
        obj = self.objective
        use_nce = obj.lambda_nce > 0
        identity = use_nce and obj.nce_identity
        warming_up = not self.steps_generators()
        # A and B through G in one batch (as the reference); flipped together for flip equivariance.
        # G(B) serves only the generator's identity term, so the discriminator's warm-up skips it.
        real = torch.cat([real_a, real_b]) if identity and not warming_up else real_a
        flipped = obj.flip_equivariance and bool(torch.rand(()) < 0.5)
        with torch.no_grad() if warming_up else contextlib.nullcontext():
            fake = self.generator(real.flip(3) if flipped else real)
        fake_b = fake[:n]

        # Discriminator first on the detached translation, then the generator, as in CUT's code.
        self.toggle_optimizer(opt_d)
        d_loss = obj.d_loss(
            self.judge(self.discriminator, real_b), self.judge(self.discriminator, fake_b.detach())
        )
        self.step_optimizer(opt_d, d_loss)
        self.untoggle_optimizer(opt_d)
        if warming_up:  # the discriminator's warm-up: no generator step yet
            return {"train/d_loss": d_loss.detach()}, n

        self.toggle_optimizer(opt_g)
        logs: dict[str, torch.Tensor] = {}
        g_loss = fake_b.new_zeros(())
        if obj.lambda_gan > 0:
            g_adv = obj.g_loss(self.judge(self.discriminator, fake_b))
            g_loss = g_loss + obj.lambda_gan * g_adv
            logs["train/g_adv"] = g_adv.detach()
        if use_nce:
            nce = self.nce_loss(real_a, fake_b, flipped)
            logs["train/nce"] = nce.detach()
            if identity:
                nce_idt = self.nce_loss(real_b, fake[n:], flipped)
                logs["train/nce_identity"] = nce_idt.detach()
                nce = 0.5 * (nce + nce_idt)
            g_loss = g_loss + obj.lambda_nce * nce
        g_loss = g_loss + obj.priors(real_a, fake_b, logs)
        self.step_optimizer(opt_g, g_loss)
        self.untoggle_optimizer(opt_g)
        self.g_steps += 1
        logs.update({"train/g_loss": g_loss.detach(), "train/d_loss": d_loss.detach()})
        return logs, n

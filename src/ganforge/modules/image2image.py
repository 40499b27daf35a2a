"""Image-to-image translation with manual optimization: CycleGAN and pix2pix in one scheme.

``mode: cyclegan`` (Zhu et al. 2017, arXiv:1703.10593) trains two generators
``generator: A -> B`` and ``generator_ba: B -> A`` against ``discriminator`` (judges B) and
``discriminator_a`` (judges A) on unpaired data, with cycle-consistency and identity losses
and a history pool of generated images for the discriminators. ``mode: pix2pix`` (Isola et
al. 2017, arXiv:1611.07004) trains one generator against a conditional discriminator that
sees ``concat(A, B)``, with an L1 loss to the paired target.

Batches follow :mod:`ganforge.data.translation` (dicts with ``"A"``, ``"B"``, ``"A_label"``
and, for paired data, ``"target"``). Per batch: one step of the generators (both at once,
one optimizer), then one of the discriminators (both at once), in the reference order of
each paper. ``self.iteration`` counts training batches and is the x-axis of logged values.

Validation logs ``val/psnr`` and ``val/ssim`` of A -> B translations against the known target
(paired held-out data) beside ``val/psnr_identity`` / ``val/ssim_identity`` of the input itself
(the "do nothing" baseline), and for labelled digits ``val/label_acc``: the share of
translations the offline digit classifier gives the source digit's label
(``val/label_acc_identity`` classifies the untranslated inputs).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from pytorch_lightning import LightningModule
from torch import nn

from ganforge.config import ConfigError
from ganforge.losses.translation import TranslationObjective, cycle_loss, identity_loss, l1_loss
from ganforge.metrics.translation import TargetScores, label_accuracy
from ganforge.modules.scheme import SchemeHooks
from ganforge.optim import build_gan_optimizers, step_schedulers
from ganforge.utils.image_pool import ImagePool
from ganforge.utils.images import image_grid

MODES = ("cyclegan", "pix2pix")


class Image2ImageModule(SchemeHooks, LightningModule):
    """Trains translators between two image domains.

    Args:
        mode: ``cyclegan`` (unpaired, two generators) or ``pix2pix`` (paired, one generator).
        generator: translates A -> B.
        discriminator: PatchGAN judging B images (conditional on A for pix2pix).
        loss: the :class:`~ganforge.losses.translation.TranslationObjective`.
        optimizer: ``{"generator": partial, "discriminator": partial}`` and optionally
            ``"scheduler"`` (a partial LR scheduler for both) with ``"scheduler_interval"``.
        generator_ba: translates B -> A (CycleGAN only).
        discriminator_a: judges A images (CycleGAN only).
        pool_size: generated images kept for the discriminators (CycleGAN: 50; 0 disables).
        max_iters: stop after this many training batches; ``None`` = no limit.
    """

    def __init__(
        self,
        mode: str,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: TranslationObjective,
        optimizer: Mapping[str, Any],
        generator_ba: nn.Module | None = None,
        discriminator_a: nn.Module | None = None,
        pool_size: int = 50,
        max_iters: int | None = None,
    ):
        super().__init__()
        self.automatic_optimization = False
        if mode not in MODES:
            raise ValueError(f"model.mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.mode, self.objective = mode, loss
        self.generator, self.discriminator = generator, discriminator
        self.generator_ba = generator_ba if mode == "cyclegan" else None
        self.discriminator_a = discriminator_a if mode == "cyclegan" else None
        self.optimizer_cfg = dict(optimizer)
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.max_iters = max_iters
        self.iteration = 0
        self.run_config: dict | None = None  # the resolved run config, stored in every checkpoint
        self.last_losses: dict[str, torch.Tensor] = {}  # read by the divergence guard
        self.target_scores = TargetScores()  # PSNR/SSIM against known targets, and the identity baseline
        self._classifier: dict[str, nn.Module] = {}  # outside the state dict: not part of the model

    # ----------------------------------------------------------------- data checks
    def check_compatible(self, datamodule) -> None:
        """Refuse a loss, networks or data this mode cannot train with, before training starts.

        Raises:
            ConfigError: a GAN loss, a discriminator of the wrong kind, single-domain data,
                or unpaired data for pix2pix; one message naming the choice to change.
        """
        if not isinstance(self.objective, TranslationObjective):
            raise ConfigError(
                f"model={self.mode} needs a translation loss (loss=cyclegan or loss=pix2pix); "
                f"got {type(self.objective).__name__}"
            )
        nets = [self.discriminator] + ([self.discriminator_a] if self.mode == "cyclegan" else [])
        conditional = [bool(getattr(net, "conditional", False)) for net in nets if net is not None]
        if self.mode == "pix2pix" and not all(conditional):
            raise ConfigError(
                "pix2pix needs a conditional discriminator (model.discriminator.conditional=true)"
            )
        if self.mode == "cyclegan" and (
            None in (self.generator_ba, self.discriminator_a) or any(conditional)
        ):
            raise ConfigError(
                "cyclegan needs model.generator_ba and model.discriminator_a, and discriminators that judge "
                "single images (conditional=false)"
            )
        name = getattr(datamodule, "name", type(datamodule).__name__)
        if not hasattr(datamodule, "paired"):
            raise ConfigError(
                f"model={self.mode} translates between two domains but data '{name}' is a single image set; "
                "use data=digits2mnist, photo2painting, edges2photos, unaligned or aligned"
            )
        if self.mode == "pix2pix" and not datamodule.paired:
            raise ConfigError(
                f"model=pix2pix needs paired images but data '{name}' is unpaired; "
                "use model=cyclegan, or paired data (data=aligned, data=edges2photos)"
            )

    # ----------------------------------------------------------------- translation
    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Translate ``images`` (in [-1, 1]) A -> B, or B -> A for CycleGAN."""
        if direction == "BtoA" and self.generator_ba is None:
            raise ValueError("pix2pix translates A -> B only")
        net = self.generator if direction == "AtoB" else self.generator_ba
        return net(images.to(self.device)).float()

    @torch.no_grad()
    def panel(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A uint8 grid, one row per image: A | G(A) | F(G(A)) | B | F(B) | G(F(B)) for CycleGAN,
        A | G(A) | target for pix2pix."""
        was_training = self.training
        self.eval()
        real_a, real_b = batch["A"].to(self.device), batch["B"].to(self.device)
        fake_b = self.translate(real_a)
        if self.mode == "cyclegan":
            fake_a = self.translate(real_b, "BtoA")
            columns = [real_a, fake_b, self.translate(fake_b, "BtoA"), real_b, fake_a, self.translate(fake_a)]
        else:
            columns = [real_a, fake_b, real_b]
        self.train(was_training)
        return image_grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns))

    @torch.no_grad()
    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule=None
    ) -> Iterator[torch.Tensor]:
        """Translations A -> B of the held-out A images for FID/KID: sample ``i`` is the translation
        of held-out image ``i mod count``; rank ``r`` yields samples ``r, r + world_size, ...``.
        ``seed`` is unused: the translation is deterministic in eval mode. The held-out images come
        from ``datamodule`` (default: the trainer's)."""
        images = (datamodule or self.trainer.datamodule).held_out("A")
        indices = list(range(rank, n, world_size))
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(indices), batch_size):
                chunk = torch.tensor(indices[start : start + batch_size]) % len(images)
                yield self.translate(images[chunk])
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------- optimizers
    def _generators(self) -> list[nn.Module]:
        return [net for net in (self.generator, self.generator_ba) if net is not None]

    def _discriminators(self) -> list[nn.Module]:
        return [net for net in (self.discriminator, self.discriminator_a) if net is not None]

    def configure_optimizers(self):
        g_params = itertools.chain(*(net.parameters() for net in self._generators()))
        d_params = itertools.chain(*(net.parameters() for net in self._discriminators()))
        return build_gan_optimizers(self.optimizer_cfg, g_params, d_params)

    def _step(self, opt, loss: torch.Tensor) -> None:
        """Backward and step for the optimizer toggled before ``loss`` was computed; untoggles it."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.untoggle_optimizer(opt)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        if self.mode == "cyclegan":
            logs = self._cyclegan_step(batch["A"], batch["B"], opt_g, opt_d)
        else:
            logs = self._pix2pix_step(batch["A"], batch["B"], opt_g, opt_d)
        self.last_losses = {k: v for k, v in logs.items() if k.endswith("loss")}
        self.iteration += 1
        step_schedulers(self, self.optimizer_cfg, "iteration")
        if self.max_iters is not None and self.iteration >= self.max_iters:
            self.trainer.should_stop = True
        self._log_step(logs, batch["A"].shape[0], batch_idx)

    def _cyclegan_step(self, real_a, real_b, opt_g, opt_d) -> dict[str, torch.Tensor]:
        obj = self.objective
        g_ab, g_ba, d_b, d_a = self.generator, self.generator_ba, self.discriminator, self.discriminator_a
        # Generators first (D frozen by toggle_optimizer), then the discriminators, as in the reference code.
        self.toggle_optimizer(opt_g)
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        g_adv = obj.g_loss(d_b(fake_b)) + obj.g_loss(d_a(fake_a))
        cyc = cycle_loss(real_a, g_ba(fake_b)) + cycle_loss(real_b, g_ab(fake_a))
        g_loss = g_adv + obj.lambda_cycle * cyc
        logs = {"train/g_adv": g_adv.detach(), "train/cycle": cyc.detach()}
        if obj.lambda_identity > 0:
            idt = identity_loss(real_b, g_ab(real_b)) + identity_loss(real_a, g_ba(real_a))
            g_loss = g_loss + obj.lambda_cycle * obj.lambda_identity * idt
            logs["train/identity"] = idt.detach()
        self._step(opt_g, g_loss)

        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        self.toggle_optimizer(opt_d)
        d_loss_b = obj.d_loss(d_b(real_b), d_b(pooled_b))
        d_loss_a = obj.d_loss(d_a(real_a), d_a(pooled_a))
        self._step(opt_d, d_loss_a + d_loss_b)
        logs.update({"train/d_loss_a": d_loss_a.detach(), "train/d_loss_b": d_loss_b.detach()})
        logs.update({"train/g_loss": g_loss.detach(), "train/d_loss": (d_loss_a + d_loss_b).detach()})
        return logs

    def _pix2pix_step(self, real_a, real_b, opt_g, opt_d) -> dict[str, torch.Tensor]:
        obj = self.objective
        fake_b = self.generator(real_a)
        # Discriminator first on the detached translation, then the generator, as in pix2pix's code.
        self.toggle_optimizer(opt_d)
        d_loss = obj.d_loss(self.discriminator(real_b, real_a), self.discriminator(fake_b.detach(), real_a))
        self._step(opt_d, d_loss)
        self.toggle_optimizer(opt_g)
        g_adv = obj.g_loss(self.discriminator(fake_b, real_a))
        l1 = l1_loss(fake_b, real_b)
        g_loss = g_adv + obj.lambda_l1 * l1
        self._step(opt_g, g_loss)
        return {
            "train/g_adv": g_adv.detach(),
            "train/l1": l1.detach(),
            "train/g_loss": g_loss.detach(),
            "train/d_loss": d_loss.detach(),
        }

    def on_fit_start(self) -> None:
        from ganforge.callbacks.samples import SampleGrid

        if any(isinstance(cb, SampleGrid) for cb in self.trainer.callbacks):
            raise ConfigError(
                "noise sample grids do not apply to translation models: use callbacks=image2image "
                "(translation panels) or callbacks.samples=null"
            )

    # ----------------------------------------------------------------- validation
    def digit_classifier(self) -> nn.Module:
        """The offline MNIST classifier (loaded once, kept out of the checkpoint)."""
        if "digits" not in self._classifier:
            from ganforge.metrics.domain import load_digit_classifier

            self._classifier["digits"] = load_digit_classifier(device=self.device)
        return self._classifier["digits"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        real_a = batch["A"]
        fake_b = self.translate(real_a)
        n = real_a.shape[0]
        if self.mode == "cyclegan":
            self.log("val/cycle_a", cycle_loss(real_a, self.translate(fake_b, "BtoA")), batch_size=n)
        target = batch.get("target")
        if target is not None:
            self.target_scores.update(fake_b, real_a, target)
            self.log("val/l1", l1_loss(fake_b, target), batch_size=n)
        labels = batch.get("A_label")
        if labels is not None and bool((labels >= 0).all()):
            classifier = self.digit_classifier()
            self.log("val/label_acc", label_accuracy(classifier, fake_b, labels), batch_size=n)
            self.log("val/label_acc_identity", label_accuracy(classifier, real_a, labels), batch_size=n)

    def on_validation_epoch_end(self) -> None:
        scores = self.target_scores.compute()
        if scores:
            self.log_dict(scores)
        self.target_scores.reset()

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganforge"] = {
            "config": self.run_config,
            "iteration": self.iteration,
            "scheme": "image2image",
            "mode": self.mode,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("ganforge", {}).get("iteration", 0))

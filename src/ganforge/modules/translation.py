"""What the image-to-image schemes share: translation, held-out scores and the data checks.

:class:`TranslationScheme` is the base of :class:`~ganforge.modules.cyclegan.CycleGANModule`,
:class:`~ganforge.modules.cut.CUTModule` and :class:`~ganforge.modules.pix2pix.Pix2PixModule`.
Batches follow :mod:`ganforge.data.translation` (dicts with ``"A"``, ``"B"``, ``"A_label"`` and,
for paired data, ``"target"``).

Validation logs ``val/psnr`` and ``val/ssim`` of A -> B translations against the known target
(paired held-out data) beside ``val/psnr_identity`` / ``val/ssim_identity`` of the input itself
(the "do nothing" baseline) and ``val/psnr_mean_target`` / ``val/ssim_mean_target`` of the mean
training target (the best single image), and for labelled digits ``val/label_acc``: the share of
translations the offline digit classifier gives the source digit's label
(``val/label_acc_identity`` classifies the untranslated inputs).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ganforge.config import ConfigError, check_value
from ganforge.losses.translation import TranslationObjective, l1_loss
from ganforge.metrics.translation import TargetScores, label_accuracy
from ganforge.modules.ema import ema_beta, ema_update
from ganforge.modules.scheme import TrainingScheme
from ganforge.networks.translator_layers import TestTimeDropout
from ganforge.optim import build_gan_optimizers
from ganforge.utils.images import image_grid


class TranslationScheme(TrainingScheme):
    """Base of the schemes that translate images from domain A to domain B.

    Args:
        generator: translates A -> B.
        discriminator: a PatchGAN judging B images (conditional on A where the scheme pairs them).
        loss: the :class:`~ganforge.losses.translation.TranslationObjective`.
        optimizer: see :class:`~ganforge.modules.scheme.TrainingScheme`.
        max_iters: stop after this many training batches; ``None`` = no limit.
        channels_last: channels-last networks and input images (see ``TrainingScheme``).
        compile: ``torch.compile`` every generator and discriminator (see ``TrainingScheme``).
        ema_decay: keep an exponential moving average of each translator's weights (Yazici et al.
            2019) with this decay, and translate with it in validation, metrics, panels,
            ``ganforge-translate`` and ``ganforge-export``; ``None`` (the papers) translates with the
            trained weights.
        augment: a differentiable augmentation (``augment=diffaugment``, or ``augment=ada`` with a fixed
            ``p``) applied to every image a discriminator sees, real, translated and pooled, in D's and
            G's steps (unpaired schemes only); ``None`` (the papers) judges images as they are.
        d_warmup_iters: the first this many iterations step the discriminators only, on translations
            by the untrained generators, so that the generators' first steps follow a discriminator
            that already tells the domains apart (WGAN's extra critic iterations at the start,
            Arjovsky et al. 2017); 0 (the papers) steps both from the first iteration.
    """

    paired_data = False  # whether the scheme needs paired A/B images
    conditional_discriminator = False  # whether its discriminators see concat(A, B)
    directions = ("AtoB",)

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: TranslationObjective,
        optimizer: Mapping[str, Any],
        max_iters: int | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        ema_decay: float | None = None,
        augment: nn.Module | None = None,
        d_warmup_iters: int = 0,
    ):
        super().__init__(optimizer, max_iters=max_iters, channels_last=channels_last, compile=compile)
        check_value("model.ema_decay", ema_decay)
        check_value("model.d_warmup_iters", d_warmup_iters)
        if augment is not None and self.conditional_discriminator:
            raise ConfigError(
                f"model.augment (augment=...) is for unpaired translation: {self.scheme}'s discriminator judges "
                "(A, B) pairs, which an augmentation drawn per image would misalign; drop augment"
            )
        if getattr(augment, "adaptive", False):
            raise ConfigError(
                "model.augment: augment=ada adapts its probability to one discriminator's outputs, which the "
                "translation schemes do not feed it; use augment=diffaugment, or augment=ada "
                "model.augment.adaptive=false with a fixed model.augment.p"
            )
        self.generator, self.discriminator, self.objective = generator, discriminator, loss
        self.augment = augment
        self.d_warmup_iters = d_warmup_iters
        self.ema_decay = ema_decay
        self.translators_ema: nn.ModuleDict | None = None
        self.build_ema()
        self.target_scores = TargetScores()  # PSNR/SSIM against known targets, and the identity baseline
        self._classifier: dict[str, nn.Module] = {}  # outside the state dict: not part of the model

    # ----------------------------------------------------------------- what the subclasses set
    def steps_generators(self) -> bool:
        """Whether this iteration steps the generators (not during ``d_warmup_iters``)."""
        return self.iteration >= self.d_warmup_iters

    def judge(self, discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``discriminator``'s logits on ``images`` behind the augmentation (``augment=``), if any: the
        same differentiable augmentation for real, translated and pooled images, in D's and G's steps
        (DiffAugment, Zhao et al. 2020)."""
        return discriminator(self.augment(images) if self.augment is not None else images)

    def generators(self) -> list[nn.Module]:
        return [self.generator]

    def discriminators(self) -> list[nn.Module]:
        return [self.discriminator]

    def trained_translator(self, direction: str) -> nn.Module:
        """The generator of ``direction`` that the optimizer trains."""
        if direction not in self.directions:
            raise ValueError(
                f"{self.scheme} translates {' and '.join(self.directions)} only; got {direction!r}"
            )
        return self.generator

    def translator(self, direction: str) -> nn.Module:
        """The generator that translates in ``direction``: the moving average when ``ema_decay`` is set."""
        trained = self.trained_translator(direction)  # refuses a direction the scheme lacks
        return self.translators_ema[direction] if self.translators_ema is not None else trained

    def build_ema(self) -> None:
        """Copy each translator into ``translators_ema`` (state dict ``translators_ema.<direction>``)
        when ``ema_decay`` is set. The constructor calls it; a subclass that adds a translator
        after ``super().__init__`` (CycleGAN's B -> A) calls it again."""
        if self.ema_decay is None:
            return
        if self.translators_ema is None:
            self.translators_ema = nn.ModuleDict()
        for direction in self.directions:
            if direction in self.translators_ema:
                continue
            try:
                net = self.trained_translator(direction)
            except AttributeError:  # not built yet: the subclass calls again once it is
                continue
            self.translators_ema[direction] = copy.deepcopy(net).requires_grad_(False)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        if self.translators_ema is not None:
            beta = ema_beta(self.ema_decay, self.g_steps)
            for direction, ema in self.translators_ema.items():
                ema_update(ema, self.trained_translator(direction), beta)

    # ----------------------------------------------------------------- data checks
    def check_compatible(self, datamodule) -> None:
        """Refuse a loss, networks or data this scheme cannot train with, before training starts.

        Raises:
            ConfigError: a GAN loss, a discriminator of the wrong kind, single-domain data,
                or unpaired data for a paired scheme; one message naming the choice to change.
        """
        if not isinstance(self.objective, TranslationObjective):
            raise ConfigError(
                f"model={self.scheme} needs a translation loss (loss=cyclegan, pix2pix, cut or fastcut); "
                f"got {type(self.objective).__name__}"
            )
        if self.scheme not in self.objective.schemes:
            raise ConfigError(
                f"{self.objective.configs} trains {self.objective.models}, not model={self.scheme}; "
                "choose the loss of the model"
            )
        if any(
            bool(getattr(net, "conditional", False)) != self.conditional_discriminator
            for net in self.discriminators()
        ):
            raise ConfigError(
                f"{self.scheme} needs discriminators with model.discriminator.conditional="
                f"{str(self.conditional_discriminator).lower()}"
            )
        name = getattr(datamodule, "name", type(datamodule).__name__)
        if getattr(datamodule, "paired", None) is None:
            raise ConfigError(
                f"model={self.scheme} translates between two domains but data '{name}' is a single image set; "
                "use data=digits2mnist, photo2painting, edges2photos, unaligned or aligned"
            )
        if self.paired_data and not datamodule.paired:
            raise ConfigError(
                f"model={self.scheme} needs paired images but data '{name}' is unpaired; "
                "use model=cyclegan, or paired data (data=aligned, data=edges2photos)"
            )

    # ----------------------------------------------------------------- translation
    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Translate ``images`` (in [-1, 1]) in ``direction``."""
        return self.translator(direction)(images.to(self.device, self.dtype)).float()

    def panel_columns(self, real_a: torch.Tensor, real_b: torch.Tensor) -> list[torch.Tensor]:
        """The columns of :meth:`panel`: ``A | G(A) | B``."""
        return [real_a, self.translate(real_a), real_b]

    @torch.no_grad()
    def panel(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A uint8 grid, one row per held-out image (columns: :meth:`panel_columns`)."""
        was_training = self.training
        self.eval()
        try:
            columns = self.panel_columns(batch["A"].to(self.device), batch["B"].to(self.device))
        finally:
            self.train(was_training)
        return image_grid(torch.stack([c.float() for c in columns], 1).flatten(0, 1), nrow=len(columns))

    @torch.no_grad()
    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule=None
    ) -> Iterator[torch.Tensor]:
        """Translations A -> B of the held-out A images for FID/KID: sample ``i`` is the translation
        of held-out image ``i mod count``; rank ``r`` yields samples ``r, r + world_size, ...``.
        Random layers that stay on at test time (pix2pix's dropout) draw from ``(seed, i)``, one
        sample at a time, so the samples are the same at every evaluation and on any number of ranks. The held-out images come from ``datamodule``
        (default: the trainer's)."""
        images = (datamodule or self.trainer.datamodule).held_out("A")
        indices = torch.arange(rank, n, world_size)
        was_training = self.training
        self.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        random_at_eval = self.random_at_eval()
        try:
            with torch.random.fork_rng(devices=devices):
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    if not random_at_eval:
                        yield self.translate(images[chunk % len(images)])
                        continue
                    outputs = []
                    for i in chunk.tolist():  # its own draw per sample: the same whatever the batch or rank
                        torch.manual_seed(seed * 1_000_003 + i)
                        outputs.append(self.translate(images[i % len(images)].unsqueeze(0)))
                    yield torch.cat(outputs)
        finally:
            self.train(was_training)

    def random_at_eval(self) -> bool:
        """Whether translation draws random numbers in eval mode (pix2pix's test-time dropout)."""
        return any(isinstance(m, TestTimeDropout) and m.at_eval and m.p > 0 for m in self.generator.modules())

    # ----------------------------------------------------------------- speed switches and optimizers
    def setup(self, stage: str) -> None:
        networks = [*self.generators(), *self.discriminators()]
        averages = list(self.translators_ema.values()) if self.translators_ema is not None else []
        self.apply_speed_switches([*networks, *averages], compiled=networks)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        # The images in the networks' memory format (every scheme reads them from the batch dict).
        if self.channels_last:
            batch = {key: self.format(x) if isinstance(x, torch.Tensor) else x for key, x in batch.items()}
        super().training_step(batch, batch_idx)

    def configure_optimizers(self):
        g_params = itertools.chain(*(net.parameters() for net in self.generators()))
        d_params = itertools.chain(*(net.parameters() for net in self.discriminators()))
        return build_gan_optimizers(self.optimizer_cfg, g_params, d_params)

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
        self.validate_more(real_a, fake_b)
        target = batch.get("target")
        if target is not None:
            mean_target = self.trainer.datamodule.mean_target()  # a TranslationDataModule: check_compatible
            self.target_scores.update(fake_b, real_a, target, mean_target)
            self.log("val/l1", l1_loss(fake_b, target), batch_size=n)
        labels = batch.get("A_label")
        if labels is not None and bool((labels >= 0).all()):
            classifier = self.digit_classifier()
            self.log("val/label_acc", label_accuracy(classifier, fake_b, labels), batch_size=n)
            self.log("val/label_acc_identity", label_accuracy(classifier, real_a, labels), batch_size=n)

    def validate_more(self, real_a: torch.Tensor, fake_b: torch.Tensor) -> None:
        """Scheme-specific validation values of one held-out batch (none here)."""

    def on_validation_epoch_end(self) -> None:
        scores = self.target_scores.compute()
        if scores:
            self.log_dict(scores)
        self.target_scores.reset()
        datamodule = getattr(self.trainer, "datamodule", None)
        selection = datamodule.selection() if hasattr(datamodule, "selection") else None
        if selection is not None:  # labelled A images kept out of training: choose checkpoints by them
            images, labels = selection
            fakes = torch.cat([self.translate(images[i : i + 256]) for i in range(0, len(images), 256)])
            self.log(
                "val/label_acc_select", label_accuracy(self.digit_classifier(), fakes, labels.to(self.device))
            )

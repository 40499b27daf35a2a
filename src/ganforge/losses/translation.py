"""Loss terms of image-to-image translation, and the objective that weighs them.

References:
    Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
    Networks" (CycleGAN): cycle loss with lambda = 10, identity loss with weight 0.5 * lambda,
    least-squares adversarial loss.
    Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"
    (pix2pix): conditional adversarial loss plus L1 to the target with lambda = 100.
    Rudin, Osher & Fatemi 1992, "Nonlinear total variation based noise removal algorithms":
    the total variation prior, which favours piecewise-flat images with sharp borders; Wang &
    Yu 2020 ("Learning to Cartoonize Using White-box Cartoon Representations") put a total
    variation term on the translation of photos into cartoons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ganforge.losses.adversarial import d_loss_bce, d_loss_lsgan, g_loss_lsgan, g_loss_nonsaturating

GAN_MODES = ("lsgan", "vanilla")


def cycle_loss(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """Cycle consistency ``|| F(G(x)) - x ||_1``, mean over pixels."""
    return (reconstructed - real).abs().mean()


def identity_loss(real: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Identity mapping ``|| G(y) - y ||_1`` for ``y`` already in G's target domain."""
    return (same - real).abs().mean()


def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pix2pix's reconstruction term ``|| G(x) - y ||_1`` to the paired target."""
    return (fake - target).abs().mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: the mean absolute difference between vertically and between
    horizontally neighbouring pixels, summed. An L1 penalty: it flattens texture but keeps a few
    large steps (borders), unlike the squared differences of White-box Cartoonization's term,
    which blur them."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return dy + dx


def g_loss_lsgan_mse(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """CycleGAN's generator loss ``MSE(D(G(x)), 1)``: Mao et al.'s halved LSGAN loss, doubled."""
    return 2.0 * g_loss_lsgan(fake_logits)


@dataclass
class TranslationObjective:
    """The weights and adversarial loss of a translation scheme (``loss=cyclegan`` / ``loss=pix2pix``).

    Args:
        gan_mode: ``lsgan`` (least squares, CycleGAN's choice) or ``vanilla`` (cross-entropy,
            pix2pix's choice).
        lambda_cycle: weight of the cycle-consistency loss (CycleGAN: 10).
        lambda_identity: identity-loss weight as a fraction of ``lambda_cycle`` (CycleGAN: 0.5).
        lambda_l1: weight of the L1 loss to the paired target (pix2pix: 100).
        lambda_tv: weight of the total variation of the A -> B translation (:func:`total_variation`;
            0 in the papers): a prior toward flat regions with sharp borders, for cartoon and
            painterly styles.
        lambda_content: weight of ``|| G(A) - A ||_1`` (0 in the papers): holds the translation to
            its input's colours and contrast, which the total variation alone would shrink (it
            scales with contrast); the fidelity term of total variation denoising, on pixels where
            CartoonGAN's content loss (Chen et al. 2018) compares VGG features.
    """

    schemes: ClassVar[tuple[str, ...]] = ("cyclegan", "pix2pix")  # the schemes that train with it
    configs: ClassVar[str] = "loss=cyclegan or loss=pix2pix"  # the loss configs that build it
    models: ClassVar[str] = "model=cyclegan or model=pix2pix"  # ... and the models they are for

    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_l1: float = 0.0
    lambda_tv: float = 0.0
    lambda_content: float = 0.0

    def __post_init__(self) -> None:
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"loss.gan_mode must be one of {', '.join(GAN_MODES)}; got {self.gan_mode!r}")
        for name in ("lambda_cycle", "lambda_identity", "lambda_l1", "lambda_tv", "lambda_content"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0; got {getattr(self, name)}")

    def priors(
        self, real_a: torch.Tensor, fake_b: torch.Tensor, logs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The priors on the A -> B translation: ``lambda_tv`` times its total variation (logged
        as ``train/tv``) plus ``lambda_content`` times its L1 distance to the input (``train/content``);
        0 when both weights are 0. Together they are the total variation denoising energy of
        Rudin, Osher and Fatemi (with an L1 fidelity term)."""
        loss = fake_b.new_zeros(())
        if self.lambda_tv > 0:
            tv = total_variation(fake_b)
            logs["train/tv"] = tv.detach()
            loss = loss + self.lambda_tv * tv
        if self.lambda_content > 0:
            content = l1_loss(fake_b, real_a)
            logs["train/content"] = content.detach()
            loss = loss + self.lambda_content * content
        return loss

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss on patch logits (both terms halved, as in the reference code)."""
        if self.gan_mode == "lsgan":
            return d_loss_lsgan(real_logits, fake_logits)
        return 0.5 * d_loss_bce(real_logits, fake_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator adversarial loss: D's patch logits on translations pushed towards "real"."""
        if self.gan_mode == "lsgan":
            return g_loss_lsgan_mse(fake_logits)
        return g_loss_nonsaturating(fake_logits)

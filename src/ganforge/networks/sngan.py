"""SNGAN ResNet generator and discriminator, unconditional or class-conditional.

The CIFAR-10 (32 px) architecture of Miyato et al. 2018, "Spectral Normalization for
Generative Adversarial Networks" (appendix, ResNet): G maps ``z`` to a 4x4 map of ``width``
(256) channels and up-samples with three residual blocks; D has four residual blocks of
``width`` (128) channels, the first two down-sampling, spectral normalization on every
layer, ReLU, global sum pooling and a linear logit. Other sides of the form 4*2^k or 7*2^k
(e.g. 28 px MNIST) use the same blocks with as many up-samplings as needed.

Class conditioning:
    * G: conditional batch norm, a class-specific gain and bias after every batch norm
      (de Vries et al. 2017; Miyato & Koyama 2018).
    * D ``conditioning="projection"``: the projection discriminator of Miyato & Koyama 2018,
      "cGANs with Projection Discriminator": ``logit = psi(h) + <embed(y), h>``.
    * D ``conditioning="aux"``: an auxiliary classifier head (ACGAN, Odena et al. 2017,
      "Conditional Image Synthesis with Auxiliary Classifier GANs"); D then returns
      ``(logits, class_logits)`` and ignores the labels it is given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.networks.dcgan import resolution_plan

CONDITIONINGS = ("projection", "aux")


def _xavier(module: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up per class; plain affine batch norm if ``num_classes == 0``.

    Args:
        channels: feature channels.
        num_classes: number of classes; 0 for an unconditional (ordinary) batch norm.
    """

    def __init__(self, channels: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bn(x)
        if not self.num_classes:
            return x
        if labels is None:
            raise ValueError("a conditional generator needs labels")
        return x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution (nearest up-sampling)."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int = 0):
        super().__init__()
        self.bn1, self.bn2 = (
            ConditionalBatchNorm2d(in_ch, num_classes),
            ConditionalBatchNorm2d(out_ch, num_classes),
        )
        self.conv1 = _xavier(nn.Conv2d(in_ch, out_ch, 3, 1, 1), math.sqrt(2))
        self.conv2 = _xavier(nn.Conv2d(out_ch, out_ch, 3, 1, 1), math.sqrt(2))
        self.shortcut = _xavier(nn.Conv2d(in_ch, out_ch, 1), 1.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class SNGANGenerator(nn.Module):
    """SNGAN ResNet generator: ``(z, labels)`` -> images in [-1, 1].

    Args:
        latent_dim: size of the noise vector (128 in the paper).
        img_size: output side (4*2^k or 7*2^k; 32 gives the paper's three blocks).
        channels: output channels.
        width: channels of every residual block (256 in the paper).
        num_classes: > 0 switches on conditional batch norm.
    """

    def __init__(
        self,
        latent_dim: int = 128,
        img_size: int = 32,
        channels: int = 3,
        width: int = 256,
        num_classes: int = 0,
    ):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.base, n_up = resolution_plan(img_size)
        self.width = width
        self.linear = _xavier(nn.Linear(latent_dim, self.base * self.base * width), 1.0)
        self.blocks = nn.ModuleList(GeneratorBlock(width, width, num_classes) for _ in range(n_up))
        self.bn = nn.BatchNorm2d(width)
        self.to_rgb = _xavier(nn.Conv2d(width, channels, 3, 1, 1), 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(z.flatten(1)).view(z.shape[0], self.width, self.base, self.base)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_rgb(F.relu(self.bn(h))))


class DiscriminatorBlock(nn.Module):
    """Residual block of D; ``first`` is the "optimized" input block (no leading ReLU)."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, first: bool, sn):
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = sn(_xavier(nn.Conv2d(in_ch, out_ch, 3, 1, 1), math.sqrt(2)))
        self.conv2 = sn(_xavier(nn.Conv2d(out_ch, out_ch, 3, 1, 1), math.sqrt(2)))
        self.shortcut = (
            sn(_xavier(nn.Conv2d(in_ch, out_ch, 1), 1.0))
            if (in_ch != out_ch or downsample)
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.first:  # pool before the 1x1 shortcut conv, as in the paper's optimized block
            return h + self.shortcut(F.avg_pool2d(x, 2))
        skip = self.shortcut(x)
        return h + (F.avg_pool2d(skip, 2) if self.downsample else skip)


class SNGANDiscriminator(nn.Module):
    """SNGAN ResNet discriminator: images (and labels) -> logits ``(N,)`` (ACGAN: plus class logits).

    Args:
        img_size: input side (the blocks adapt to any size divisible by 4).
        channels: input channels.
        width: channels of every residual block (128 in the paper).
        num_classes: > 0 makes D conditional as chosen by ``conditioning``.
        conditioning: ``"projection"`` (cGAN-PD) or ``"aux"`` (ACGAN auxiliary classifier).
        spectral_norm: spectral normalization on every layer, as in SNGAN.
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 3,
        width: int = 128,
        num_classes: int = 0,
        conditioning: str = "projection",
        spectral_norm: bool = True,
    ):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}; got {conditioning!r}")
        if img_size % 4:
            raise ValueError(
                f"the SNGAN discriminator down-samples twice: img_size must divide by 4; got {img_size}"
            )
        sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        self.num_classes, self.conditioning = num_classes, conditioning
        self.blocks = nn.Sequential(
            DiscriminatorBlock(channels, width, downsample=True, first=True, sn=sn),
            DiscriminatorBlock(width, width, downsample=True, first=False, sn=sn),
            DiscriminatorBlock(width, width, downsample=False, first=False, sn=sn),
            DiscriminatorBlock(width, width, downsample=False, first=False, sn=sn),
        )
        self.linear = sn(_xavier(nn.Linear(width, 1), 1.0))
        self.embed = self.classifier = None
        if num_classes and conditioning == "projection":
            self.embed = sn(_xavier(nn.Embedding(num_classes, width), 1.0))
        elif num_classes:
            self.classifier = sn(_xavier(nn.Linear(width, num_classes), 1.0))

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        logits = self.linear(h).flatten()
        if self.classifier is not None:
            return logits, self.classifier(h)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a projection discriminator needs labels")
            logits = logits + (self.embed(labels) * h).sum(dim=1)
        return logits

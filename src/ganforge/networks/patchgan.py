"""The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017; Zhu et al. 2017).

A stack of 4x4 convolutions that outputs a grid of logits, each judging one overlapping
patch; with ``n_layers=3`` each logit sees a 70x70 receptive field (the paper's "70x70
PatchGAN"). ``n_layers=0`` is the paper's 1x1 "PixelGAN" (the reference code's
``netD=pixel``): three 1x1 convolutions that judge each pixel's colour alone, blind to
texture and shape. For pix2pix the discriminator is conditional: it sees the input and the
(real or translated) output concatenated along channels.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.networks.translator_layers import init_translator_weights, norm_layer, uses_bias


def receptive_field(n_layers: int) -> int:
    """Side of the input patch one output logit sees: 70 for ``n_layers=3``, 34 for 2, 16 for 1,
    1 for 0 (the PixelGAN)."""
    if n_layers == 0:
        return 1
    field = 1
    strides = [1, 1] + [2] * n_layers  # listed from the output back to the input
    for stride in strides:
        field = (field - 1) * stride + 4
    return field


class PatchDiscriminator(nn.Module):
    """Classifies overlapping patches as real or fake.

    Args:
        channels: channels of one image.
        width: ndf, channels of the first layer (64 in the paper), doubled per layer up to 8x.
        n_layers: stride-2 convolutions (3 gives the 70x70 PatchGAN); 0 gives the 1x1 PixelGAN.
        norm: ``instance`` (CycleGAN), ``batch`` (pix2pix) or ``none``.
        conditional: input is ``concat(source, image)`` with ``2 * channels`` channels (pix2pix).
        norm_affine: learned scale and shift in instance norm (see :func:`norm_layer`).
    """

    def __init__(
        self,
        channels: int = 3,
        width: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        conditional: bool = False,
        norm_affine: bool = False,
    ):
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0 (0 = the 1x1 PixelGAN); got {n_layers}")
        self.conditional = conditional
        bias = uses_bias(norm)
        in_channels = channels * (2 if conditional else 1)
        if n_layers == 0:
            layers: list[nn.Module] = [
                nn.Conv2d(in_channels, width, 1),
                nn.LeakyReLU(0.2, True),
                nn.Conv2d(width, width * 2, 1, bias=bias),
                norm_layer(norm, width * 2, norm_affine),
                nn.LeakyReLU(0.2, True),
                nn.Conv2d(width * 2, 1, 1, bias=bias),
            ]
        else:
            layers = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
            mult = 1
            for n in range(1, n_layers + 1):
                prev, mult = mult, min(2**n, 8)
                stride = 2 if n < n_layers else 1
                layers += [
                    nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
                    norm_layer(norm, width * mult, norm_affine),
                    nn.LeakyReLU(0.2, True),
                ]
            layers += [nn.Conv2d(width * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        init_translator_weights(self)

    def forward(self, image: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Patch logits ``(N, 1, h, w)``; ``source`` is required when the discriminator is conditional."""
        if self.conditional:
            if source is None:
                raise ValueError("a conditional PatchDiscriminator needs the source image")
            image = torch.cat([source, image], 1)
        return self.net(image)

"""The ResNet image translator of CycleGAN (Zhu et al. 2017, arXiv:1703.10593).

After Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer"): a 7x7
convolution, two stride-2 downsamplings, ``n_blocks`` residual blocks (6 for 128 px,
9 for 256 px in the paper), two transposed-convolution upsamplings and a 7x7 convolution
to ``tanh`` outputs. Fully convolutional: any input whose sides are multiples of
:attr:`ResnetTranslator.size_multiple` comes out at the same size.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.networks.translator_layers import init_translator_weights, norm_layer, uses_bias


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convolutions with a skip connection."""

    def __init__(self, channels: int, norm: str, dropout: float = 0.0, norm_affine: bool = False):
        super().__init__()
        bias = uses_bias(norm)
        layers = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels, norm_affine),
        ]
        layers += [nn.ReLU(True)] + ([nn.Dropout(dropout)] if dropout else [])
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels, norm_affine),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetTranslator(nn.Module):
    """Maps an image of one domain to an image of another, same size.

    Args:
        channels: image channels in and out.
        width: ngf, channels of the first layer (64 in the paper); doubled at each downsampling.
        n_blocks: residual blocks at the bottleneck (6 or 9 in the paper).
        norm: ``instance`` (paper), ``batch`` or ``none``.
        dropout: dropout inside the residual blocks (0 in CycleGAN).
        channels_out: output channels when they differ from ``channels``.
        norm_affine: learned scale and shift in instance norm (see :func:`norm_layer`).
    """

    size_multiple = 4  # two stride-2 downsamplings

    def __init__(
        self,
        channels: int = 3,
        width: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
        channels_out: int | None = None,
        norm_affine: bool = False,
    ):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}")
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, width, 7, bias=bias),
            norm_layer(norm, width, norm_affine),
            nn.ReLU(True),
        ]
        ch = width
        for _ in range(2):
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ch * 2, norm_affine),
            ]
            layers += [nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch, norm, dropout, norm_affine) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, ch // 2, norm_affine),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels_out or channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_translator_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

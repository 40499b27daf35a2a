"""The ResNet image translator of CycleGAN (Zhu et al. 2017, arXiv:1703.10593) and CUT (Park et al. 2020).

After Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer"): a 7x7
convolution, two stride-2 downsamplings, ``n_blocks`` residual blocks (6 for 128 px,
9 for 256 px in the paper), two transposed-convolution upsamplings and a 7x7 convolution
to ``tanh`` outputs. ``n_downsampling`` (2 in the papers) sets how many halvings precede the
blocks; 0 runs them at the input's resolution, so the output can change single pixels (edges,
texture) instead of passing every change through a bottleneck at 1/4 of the size. Fully
convolutional: any input whose sides are multiples of :attr:`ResnetTranslator.size_multiple`
comes out at the same size.

``antialias=True`` builds the generator of the CUT code (Park et al. 2020, after Zhang 2019,
"Making Convolutional Networks Shift-Invariant Again"): each downsampling is a stride-1
convolution, norm and ReLU followed by a [1, 2, 1] blur-and-subsample, and each upsampling a
[1, 3, 3, 1] blur upsampling followed by a stride-1 convolution, norm and ReLU.

:meth:`ResnetTranslator.encode` returns intermediate features at named points (CUT's PatchNCE
loss reads them); :attr:`ResnetTranslator.feature_points` maps each name to its index in
``net``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.networks.translator_layers import (
    InputResidual,
    init_translator_weights,
    norm_layer,
    uses_bias,
)


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


def _binomial_filter(taps: int) -> torch.Tensor:
    """The normalised 2-D binomial filter with ``taps`` taps per side ([1, 2, 1], [1, 3, 3, 1])."""
    row = torch.tensor([float(math.comb(taps - 1, k)) for k in range(taps)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Halves the resolution: reflect-pad by 1, [1, 2, 1] x [1, 2, 1] blur, keep every other pixel."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer(
            "kernel", _binomial_filter(3).expand(channels, 1, 3, 3).clone(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel, stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Doubles the resolution: zero-insertion then a [1, 3, 3, 1] x [1, 3, 3, 1] blur (gain 4), edges replicated."""

    def __init__(self, channels: int):
        super().__init__()
        kernel = 4.0 * _binomial_filter(4)  # x4: every output pixel sums a quarter of the filter's taps
        self.register_buffer("kernel", kernel.expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(padded, self.kernel, stride=2, padding=2, groups=x.shape[1])
        return up[:, :, 1:-1, 1:-1]  # (2H + 2) -> 2H, aligned with the input's pixel centres


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
        antialias: blur-pooled down- and upsampling, as CUT's generator (see the module docstring);
            ``False`` is CycleGAN's strided and transposed convolutions.
        residual: predict a change to the input instead of the image (:class:`InputResidual`:
            ``clamp(x + change)``, starting as the identity); ``False`` is the paper's ``tanh``.
        n_downsampling: halvings before the residual blocks, each doubling the width (2 in the
            papers; 0 keeps the blocks at full resolution, at ``width`` channels).

    Feature points (:meth:`encode`): ``input`` is the reflect-padded input image (the output of
    the first layer), ``down1`` / ``down2`` the outputs of the first / second downsampling
    convolution (before its norm; at 1/2 and 1/4 of the input size, or at 1 and 1/2 with
    ``antialias``, where the blur pooling follows; only as many as ``n_downsampling``),
    ``block1`` ... ``block<n_blocks>`` the outputs of the residual blocks (at
    1 / 2**n_downsampling of the input size).
    """

    def __init__(
        self,
        channels: int = 3,
        width: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
        channels_out: int | None = None,
        norm_affine: bool = False,
        antialias: bool = False,
        residual: bool = False,
        n_downsampling: int = 2,
    ):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}")
        if n_downsampling < 0:
            raise ValueError(f"n_downsampling must be >= 0; got {n_downsampling}")
        self.size_multiple = 2**n_downsampling  # input sides must divide evenly by every halving
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, width, 7, bias=bias),
            norm_layer(norm, width, norm_affine),
            nn.ReLU(True),
        ]
        self.feature_points: dict[str, int] = {"input": 0}
        self._feature_channels: dict[str, int] = {"input": channels}
        ch = width
        for level in range(1, n_downsampling + 1):
            self.feature_points[f"down{level}"] = len(layers)
            self._feature_channels[f"down{level}"] = ch * 2
            stride = 1 if antialias else 2
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ch * 2, norm_affine),
            ]
            layers += [nn.ReLU(True)] + ([BlurDownsample(ch * 2)] if antialias else [])
            ch *= 2
        for block in range(1, n_blocks + 1):
            self.feature_points[f"block{block}"] = len(layers)
            self._feature_channels[f"block{block}"] = ch
            layers.append(ResidualBlock(ch, norm, dropout, norm_affine))
        for _ in range(n_downsampling):
            if antialias:
                layers += [BlurUpsample(ch), nn.Conv2d(ch, ch // 2, 3, padding=1, bias=bias)]
            else:
                layers += [
                    nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
                ]
            layers += [norm_layer(norm, ch // 2, norm_affine), nn.ReLU(True)]
            ch //= 2
        last = nn.Conv2d(ch, channels_out or channels, 7)
        if residual and (channels_out or channels) != channels:
            raise ValueError(
                f"residual=true adds the output to the input: channels_out ({channels_out}) must equal channels ({channels})"
            )
        layers += [nn.ReflectionPad2d(3)] + ([] if residual else [last, nn.Tanh()])
        self.net = nn.Sequential(*layers)
        self.residual = InputResidual(last) if residual else None
        init_translator_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if self.residual is None else self.residual(self.net(x), x)

    def _point(self, name: str) -> int:
        if name not in self.feature_points:
            raise ValueError(
                f"unknown feature point {name!r} of the ResNet translator; valid: {', '.join(self.feature_points)}"
            )
        return self.feature_points[name]

    def feature_channels(self, name: str) -> int:
        """Channels of the features at the point ``name`` (see the class docstring)."""
        self._point(name)
        return self._feature_channels[name]

    def encode(self, x: torch.Tensor, points: Sequence[str]) -> list[torch.Tensor]:
        """The features at ``points`` (names, see the class docstring), in that order.

        Runs ``net`` only as far as the deepest point asked for.
        """
        indices = [self._point(name) for name in points]
        wanted = set(indices)
        found: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.net[: max(indices) + 1]):
            x = layer(x)
            if index in wanted:
                found[index] = x
        return [found[i] for i in indices]

"""The U-Net generator of pix2pix (Isola et al. 2017, arXiv:1611.07004; Ronneberger et al. 2015).

An encoder of ``num_downs`` stride-2 4x4 convolutions down to 1x1 and a mirrored decoder,
with a skip connection from every encoder level to its decoder level, so low-level
structure (edges, layout) passes straight to the output. ``num_downs`` is 7 for 128 px and
8 for 256 px (the paper's ``unet_128`` / ``unet_256``): ``log2(img_size)``. Dropout 0.5 in
the three innermost decoder levels is the paper's noise source; it is active in training only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.networks.translator_layers import (
    InputResidual,
    TestTimeDropout,
    init_translator_weights,
    norm_layer,
    uses_bias,
)


class UNetLevel(nn.Module):
    """One encoder/decoder level around an inner module, concatenating its input to its output."""

    def __init__(
        self,
        outer: int,
        inner: int,
        submodule: nn.Module | None,
        norm: str,
        outermost: bool = False,
        dropout: float = 0.0,
        channels_in: int | None = None,
        channels_out: int | None = None,
        norm_affine: bool = False,
        dropout_at_eval: bool = True,
        head: bool = True,
    ):
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm)
        innermost = submodule is None
        down_in = channels_in or outer
        down = [nn.Conv2d(down_in, inner, 4, stride=2, padding=1, bias=bias)]
        if not outermost:
            down = [nn.LeakyReLU(0.2, True), *down] + (
                [] if innermost else [norm_layer(norm, inner, norm_affine)]
            )
        up_in = inner if innermost else inner * 2
        if outermost:
            up = [nn.ReLU(True)]
            up += [nn.ConvTranspose2d(up_in, channels_out or outer, 4, 2, 1), nn.Tanh()] if head else []
        else:
            up = [
                nn.ReLU(True),
                nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias),
                norm_layer(norm, outer, norm_affine),
            ]
            up += [TestTimeDropout(dropout, dropout_at_eval)] if dropout else []
        self.model = nn.Sequential(*down, *([submodule] if submodule is not None else []), *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: translates a ``(N, channels, H, W)`` image to the target domain.

    Args:
        channels: image channels in and out.
        img_size: training image side; sets ``num_downs = log2(img_size)`` when that is not given.
        width: ngf, channels of the first encoder layer (64 in the paper), capped at 8x.
        num_downs: stride-2 levels; inputs must be multiples of ``2**num_downs``.
        norm: ``batch`` (paper, used with batch size 1), ``instance`` or ``none``.
        dropout: dropout of the three innermost decoder levels (0.5 in the paper).
        channels_out: output channels when they differ from ``channels``.
        norm_affine: learned scale and shift in instance norm (see :func:`norm_layer`).
        dropout_at_eval: keep the dropout on in eval mode, as the paper does at test time
            (its noise source); ``False`` makes eval-mode translation deterministic.
    """

    def __init__(
        self,
        channels: int = 3,
        img_size: int = 256,
        width: int = 64,
        num_downs: int | None = None,
        norm: str = "instance",
        dropout: float = 0.5,
        channels_out: int | None = None,
        norm_affine: bool = False,
        dropout_at_eval: bool = True,
        residual: bool = False,
    ):
        super().__init__()
        if residual and (channels_out or channels) != channels:
            raise ValueError(
                f"residual=true adds the output to the input: channels_out ({channels_out}) must equal channels ({channels})"
            )
        num_downs = num_downs or int(round(math.log2(img_size)))
        if num_downs < 5:
            raise ValueError(f"the U-Net needs num_downs >= 5 (img_size >= 32); got {num_downs}")
        self.size_multiple = 2**num_downs
        opts = {"norm_affine": norm_affine, "dropout_at_eval": dropout_at_eval}
        level = UNetLevel(width * 8, width * 8, None, norm, **opts)
        for _ in range(num_downs - 5):
            level = UNetLevel(width * 8, width * 8, level, norm, dropout=dropout, **opts)
        for mult in (4, 2, 1):
            level = UNetLevel(width * mult, width * mult * 2, level, norm, **opts)
        self.model = UNetLevel(
            width,
            width,
            level,
            norm,
            True,
            channels_in=channels,
            channels_out=channels_out or channels,
            head=not residual,
            **opts,
        )
        self.residual = InputResidual(nn.ConvTranspose2d(width * 2, channels, 4, 2, 1)) if residual else None
        init_translator_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.residual is None else self.residual(self.model(x), x)

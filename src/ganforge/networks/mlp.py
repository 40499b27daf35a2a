"""MLP generator and discriminator for 2-D point data (the mixture benchmarks).

Defaults follow the released code of PacGAN (Lin et al. 2018, arXiv:1712.04086,
github.com/fjxmlzn/PacGAN, ``synthetic_data_experiments``): a generator of four hidden
layers of 400 ReLU units with batch norm and a linear output, fed a 2-D Gaussian latent; a
discriminator of three maxout layers (200 units, 5 pieces; Goodfellow et al. 2013) and a
linear output, with PacGAN packing of ``pack`` points concatenated into one input.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.networks.packing import pack_samples


def _init_normal(module: nn.Module, std: float) -> None:
    # PacGAN initialises every weight from N(0, 0.02) and every bias at 0.
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Maxout(nn.Module):
    """A linear layer with ``pieces`` outputs per unit, keeping the largest (Goodfellow et al. 2013).

    Args:
        in_features: input size.
        out_features: units.
        pieces: linear pieces per unit.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.out_features, self.pieces).amax(-1)


class MLPGenerator(nn.Module):
    """``z (N, latent_dim)`` -> points ``(N, out_dim)`` (unbounded: the mixtures reach +-4).

    Args:
        latent_dim: size of the noise vector.
        out_dim: dimension of the data points.
        width: units per hidden layer.
        depth: hidden layers.
        batch_norm: batch norm before every hidden ReLU, as in PacGAN.
        init_std: standard deviation of the initial weights.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        out_dim: int = 2,
        width: int = 400,
        depth: int = 4,
        batch_norm: bool = True,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.latent_dim, self.out_dim = latent_dim, out_dim
        layers: list[nn.Module] = []
        size = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, width, bias=not batch_norm)]
            layers += [nn.BatchNorm1d(width)] if batch_norm else []
            layers += [nn.ReLU(True)]
            size = width
        layers += [nn.Linear(size, out_dim)]
        self.net = nn.Sequential(*layers)
        _init_normal(self, init_std)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Points ``(N, in_dim)`` -> one logit per pack of ``pack`` points, shape ``(N / pack,)``.

    Args:
        in_dim: dimension of one data point.
        width: units per hidden layer.
        depth: hidden layers.
        maxout_pieces: pieces per maxout unit; 1 uses linear layers with LeakyReLU(0.2).
        pack: points judged together (PacGAN); the batch size must be a multiple of it.
        init_std: standard deviation of the initial weights.
    """

    def __init__(
        self,
        in_dim: int = 2,
        width: int = 200,
        depth: int = 3,
        maxout_pieces: int = 5,
        pack: int = 1,
        init_std: float = 0.02,
    ):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1; got {pack}")
        if maxout_pieces < 1:
            raise ValueError(f"maxout_pieces must be >= 1; got {maxout_pieces}")
        self.pack = pack
        layers: list[nn.Module] = []
        size = in_dim * pack
        for _ in range(depth):
            if maxout_pieces > 1:
                layers += [Maxout(size, width, maxout_pieces)]
            else:
                layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, True)]
            size = width
        layers += [nn.Linear(size, 1)]
        self.net = nn.Sequential(*layers)
        _init_normal(self, init_std)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(pack_samples(x, self.pack)).flatten()

"""2-D Gaussian-mixture benchmarks for mode collapse, as PacGAN's released code defines them.

Lin et al. 2018 (PacGAN, arXiv:1712.04086; github.com/fjxmlzn/PacGAN,
``synthetic_data_experiments/2DRing_GAN&PacGAN/config.py`` and ``2DGrid_GAN&PacGAN``):

* ``ring8``: 8 Gaussians with means ``(cos 2 pi k / 8, sin 2 pi k / 8)`` and sigma = 0.01;
* ``grid25``: 25 Gaussians with means ``{-4, -2, 0, 2, 4}^2`` and sigma = 0.05;

each with equal weights and a fixed training set of 100,000 points. Batches are
``(points (N, 2), zeros (N,))``: the points keep their raw coordinates (no scaling to [-1, 1]).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.utils.data import TensorDataset

from ganforge.data.base import GANDataModule


def ring8_modes() -> tuple[torch.Tensor, float]:
    """Means ``(8, 2)`` on the unit circle and their sigma."""
    angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    return torch.stack([angles.cos(), angles.sin()], dim=1).float(), 0.01


def grid25_modes() -> tuple[torch.Tensor, float]:
    """Means ``(25, 2)`` on the grid ``{-4, -2, 0, 2, 4}^2`` and their sigma."""
    coords = range(-4, 5, 2)
    return torch.tensor(list(itertools.product(coords, coords)), dtype=torch.float32), 0.05


MIXTURES = {"ring8": ring8_modes, "grid25": grid25_modes}


def sample_mixture(
    means: torch.Tensor, sigma: float, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from the equal-weight mixture; returns ``(points (n, 2), mode index (n,))``."""
    modes = torch.randint(0, len(means), (n,), generator=generator)
    points = means[modes] + sigma * torch.randn(n, means.shape[1], generator=generator)
    return points, modes


class MixtureDataModule(GANDataModule):
    """A fixed set of points from a named 2-D mixture.

    Args:
        mixture: ``ring8`` or ``grid25``.
        n_points: size of the training set (100,000 in PacGAN).
        data_seed: seed of the training set, independent of the run seed.
        batch_size: points per batch.
        **kwargs: the remaining :class:`GANDataModule` arguments (workers, validation share).
    """

    num_classes = 0
    content = "points"  # 2-D points: scored by the mode metrics, not by image metrics

    def __init__(
        self,
        mixture: str = "ring8",
        n_points: int = 100_000,
        data_seed: int = 0,
        batch_size: int = 100,
        **kwargs,
    ):
        if mixture not in MIXTURES:
            raise ValueError(f"data.mixture must be one of {', '.join(MIXTURES)}; got {mixture!r}")
        if n_points < 1:
            raise ValueError(f"data.n_points must be >= 1; got {n_points}")
        kwargs.setdefault("val_fraction", 0.0)
        super().__init__(batch_size=batch_size, **kwargs)
        self.name, self.n_points, self.data_seed = mixture, n_points, data_seed
        self.modes = MIXTURES[mixture]()  # (means, sigma): read by the mode metrics

    def build_dataset(self) -> TensorDataset:
        means, sigma = self.modes
        points, _ = sample_mixture(means, sigma, self.n_points, torch.Generator().manual_seed(self.data_seed))
        return TensorDataset(points, torch.zeros(self.n_points, dtype=torch.long))

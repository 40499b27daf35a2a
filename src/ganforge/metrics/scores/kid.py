"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"), as torch-fidelity computes it.

Cubic polynomial kernel ``k(x, y) = (x·y / d + 1)³``, the unbiased MMD² estimator on each of
``kid_subsets`` subsets, subsets drawn without replacement by ``np.random.RandomState(seed)``,
generated set first (torch-fidelity's ``input1``) then real set, mean and ``np.std`` (ddof 0)
over subsets: on the same features and seed the values are torch-fidelity's
``kid_features_to_metric``. The generator is this metric's own, so selecting other metrics
never moves KID.

Fewer images than ``kid_subset_size``: the subset size is lowered to the smaller count and a
warning says so (torch-fidelity refuses; StyleGAN2-ADA lowers silently). When it then equals
both counts every subset is the whole of both sets: KID is computed once and ``kid_std`` is NaN,
since a spread over identical subsets measures only floating-point summation order.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.registry import FeatureSetMetric, register_metric

log = logging.getLogger("ganforge")


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² of two equal-sized ``(m, d)`` sets under the cubic polynomial kernel."""
    m, d = x.shape
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return float(within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: torch.Tensor, fake: torch.Tensor, subset_size: int, subsets: int, seed: int
) -> tuple[float, float]:
    """``(kid_mean, kid_std)`` of ``fake`` against ``real`` features (float64 recommended).

    Raises:
        ValueError: ``subset_size`` is below 2 or above either set's size.
    """
    n_real, n_fake = len(real), len(fake)
    if not 2 <= subset_size <= min(n_real, n_fake):
        raise ValueError(f"KID subset size {subset_size} must be in [2, {min(n_real, n_fake)}]")
    if subset_size == n_real == n_fake:
        return mmd2_unbiased(fake, real), math.nan
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        f = fake[torch.from_numpy(rng.choice(n_fake, subset_size, replace=False)).to(fake.device)]
        r = real[torch.from_numpy(rng.choice(n_real, subset_size, replace=False)).to(real.device)]
        mmds[i] = mmd2_unbiased(f, r)
    return float(np.mean(mmds)), float(np.std(mmds))


@register_metric
class KID(FeatureSetMetric):
    """``val/kid_mean`` and ``val/kid_std`` over ``kid_subsets`` subsets of ``kid_subset_size``."""

    name = "kid"
    settings = {"kid_subset_size": 1000, "kid_subsets": 100}
    recorded_always = True
    warned = False

    def check(self) -> None:
        if self.options["kid_subset_size"] < 2 or self.options["kid_subsets"] < 1:
            raise ValueError(
                f"metrics.kid_subset_size must be >= 2 and metrics.kid_subsets >= 1; got "
                f"{self.options['kid_subset_size']} and {self.options['kid_subsets']}"
            )

    def subset_size(self, n_real: int) -> int:
        """The subset size used: the setting, lowered to the smaller sample count."""
        return min(self.options["kid_subset_size"], n_real, self.n_fake)

    def protocol(self, n_real: int) -> dict[str, int]:
        return {"kid_subset_size": self.subset_size(n_real), "kid_subsets": self.options["kid_subsets"]}

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        m = self.subset_size(real.n)
        if m < self.options["kid_subset_size"] and not self.warned:
            identical = m == real.n == self.n_fake
            log.warning(
                "KID: %d real and %d generated images, fewer than metrics.kid_subset_size=%d; "
                "subsets of %d are used%s",
                real.n,
                self.n_fake,
                self.options["kid_subset_size"],
                m,
                " (each holds every image, so val/kid_std is NaN)" if identical else "",
            )
            self.warned = True
        super().begin(real, shard, world_size)

    def score(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        m = min(self.options["kid_subset_size"], len(real), len(fake))  # the sets as gathered
        mean, std = kernel_inception_distance(real, fake, m, self.options["kid_subsets"], self.seed)
        return {"val/kid_mean": mean, "val/kid_std": std}

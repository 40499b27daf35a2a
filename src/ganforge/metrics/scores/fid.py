"""Fréchet Inception Distance (Heusel et al. 2017), torchmetrics' implementation.

Single-process runs load the cached float64 mean and covariance of the real features into the
state directly; under DDP each rank adds its share of the real features and the all-reduce of
the sums restores the whole set.
"""

from __future__ import annotations

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.features import PrecomputedFeatures
from ganforge.metrics.registry import QualityMetric, register_metric


def load_fid_statistics(
    fid: FrechetInceptionDistance, mean: torch.Tensor, cov: torch.Tensor, n: int, real: bool = True
) -> None:
    """Set one side of a torchmetrics FID state from a mean, an unbiased covariance and a count.

    The state holds running sums: ``sum = n * mean`` and ``cov_sum = (n - 1) * cov + n * mean meanᵀ``,
    from which ``compute()`` recovers exactly ``mean`` and ``cov``.
    """
    mean, cov = mean.double().to(fid.device), cov.double().to(fid.device)
    side = "real" if real else "fake"
    setattr(fid, f"{side}_features_sum", mean * n)
    setattr(fid, f"{side}_features_cov_sum", cov * (n - 1) + n * torch.outer(mean, mean))
    setattr(fid, f"{side}_features_num_samples", torch.tensor(n, dtype=torch.long, device=fid.device))
    fid.orig_dtype = torch.float64  # compute() casts to the dtype update() last saw


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two ``(n, d)`` feature sets (``n >= 2`` each), by torchmetrics as ``val/fid`` is."""
    fid = FrechetInceptionDistance(PrecomputedFeatures(real.shape[1]), reset_real_features=False).to(
        real.device
    )
    for side, x in ((True, real.double()), (False, fake.double())):
        load_fid_statistics(fid, x.mean(0), torch.cov(x.T), x.shape[0], real=side)
    return float(fid.compute())


@register_metric
class FID(QualityMetric):
    """``val/fid``; no settings."""

    name = "fid"

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        d = real.features.shape[1]
        self.state = FrechetInceptionDistance(PrecomputedFeatures(d), reset_real_features=False)
        self.state.to(shard.device)
        if world_size == 1:  # the cached float64 statistics themselves
            load_fid_statistics(self.state, real.mean, real.cov, real.n, real=True)
        else:  # this rank's share of the sums; the all-reduce adds the shares up
            self.state.update(shard, real=True)

    def update(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        self.state.update(features, real=False)

    def compute(self) -> dict[str, float]:
        return {"val/fid": float(self.state.compute())}

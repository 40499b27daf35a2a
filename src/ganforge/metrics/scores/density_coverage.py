"""Density and coverage (Naeem et al. 2020) as a registered metric.

The arithmetic is :func:`ganforge.metrics.density_coverage.density_coverage`.
"""

from __future__ import annotations

import torch

from ganforge.metrics.density_coverage import density_coverage
from ganforge.metrics.registry import FeatureSetMetric, register_metric


@register_metric
class DensityCoverage(FeatureSetMetric):
    """``val/density`` and ``val/coverage`` with neighbourhood size ``dc_k`` among the real features."""

    name = "dc"
    settings = {"dc_k": 5}  # k of the paper (they found k = 5 with 10k samples reliable)

    def check(self) -> None:
        if self.options["dc_k"] < 1:
            raise ValueError(f"metrics.dc_k must be >= 1; got {self.options['dc_k']}")

    def score(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        density, coverage = density_coverage(real, fake, self.options["dc_k"])
        return {"val/density": density, "val/coverage": coverage}

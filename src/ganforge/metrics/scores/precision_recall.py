"""Improved precision and recall (Kynkäänniemi et al. 2019) as a registered metric.

The k-NN manifold arithmetic is :func:`ganforge.metrics.precision_recall.precision_recall`.
"""

from __future__ import annotations

import torch

from ganforge.metrics.precision_recall import precision_recall
from ganforge.metrics.registry import FeatureSetMetric, register_metric


@register_metric
class PrecisionRecall(FeatureSetMetric):
    """``val/precision`` and ``val/recall`` with neighbourhood size ``pr_k``."""

    name = "pr"
    settings = {"pr_k": 3}  # k of the paper
    recorded_always = True

    def check(self) -> None:
        k = self.options["pr_k"]
        if k < 1 or self.n_fake <= k:
            raise ValueError(f"metrics.pr_k={k} needs 1 <= pr_k < n_fake (n_fake={self.n_fake})")

    def score(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        precision, recall = precision_recall(real, fake, self.options["pr_k"])
        return {"val/precision": float(precision), "val/recall": float(recall)}

"""Inception Score (Salimans et al. 2016), with splits as torch-fidelity makes them.

The generated images' logits are shuffled by ``np.random.RandomState(seed).permutation`` (this
metric's own generator, so selecting other metrics never moves IS), split at ``i * N // splits``,
and the score is ``exp(E_x KL(p(y|x) || p(y)))`` per split; the result is the mean and
``np.std`` (ddof 0) over splits. On the same logits and seed the values are torch-fidelity's
``isc_features_to_metric``. torchmetrics differs: ``chunk`` boundaries and the unbiased std.
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.registry import FeatureSets, QualityMetric, register_metric


def inception_score(logits: torch.Tensor, splits: int, seed: int) -> tuple[float, float]:
    """``(is_mean, is_std)`` of ``(N, classes)`` logits over ``splits`` splits.

    Raises:
        ValueError: fewer logits than splits (a split would be empty).
    """
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"the Inception Score over {splits} splits needs at least {splits} images; got {n}")
    order = torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)
    logits = logits[order].double()
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        log_marginal = p[part].mean(dim=0, keepdim=True).log()
        scores.append(float((p[part] * (log_p[part] - log_marginal)).sum(dim=1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


@register_metric
class InceptionScore(QualityMetric):
    """``val/is_mean`` and ``val/is_std`` over ``is_splits`` splits of the generated images."""

    name = "is"
    settings = {"is_splits": 10}
    recorded_always = True
    needs_logits = True

    def check(self) -> None:
        splits = self.options["is_splits"]
        if splits < 1 or self.n_fake < splits:
            raise ValueError(
                f"metrics.is_splits={splits} needs 1 <= is_splits <= n_fake (n_fake={self.n_fake}): "
                "each split needs at least one generated image"
            )

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        self.state = FeatureSets(sides=("fake",)).to(shard.device)

    def update(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        self.state.update(logits, real=False)

    def compute(self) -> dict[str, float]:
        logits = self.state.compute()["fake"]
        mean, std = inception_score(logits, self.options["is_splits"], self.seed)
        return {"val/is_mean": mean, "val/is_std": std}

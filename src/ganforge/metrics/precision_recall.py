"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
for Assessing Generative Models").

Each sample set is a union of balls in feature space: every point's ball reaches its k-th nearest
neighbour in its own set. Precision is the share of generated points inside the real manifold,
recall the share of real points inside the generated one. torchmetrics has no implementation, so
it is written here, with distances computed in row blocks to bound memory.
"""

from __future__ import annotations

import torch


def block_distances(a: torch.Tensor, b: torch.Tensor, block: int):
    """Yield ``(start, distances of a[start:start+block] to every row of b)``; memory ``block * len(b)``."""
    for start in range(0, a.shape[0], block):
        yield start, torch.cdist(a[start : start + block], b)


def knn_radii(features: torch.Tensor, k: int = 3, block: int = 1024) -> torch.Tensor:
    """Distance from each point to its ``k``-th nearest neighbour in the same set (itself excluded).

    The radii of improved precision/recall and of density/coverage (:mod:`ganforge.metrics.density_coverage`).
    """
    if features.shape[0] <= k:
        raise ValueError(f"k-NN radii need more than k={k} points; got {features.shape[0]}")
    radii = torch.empty(features.shape[0], dtype=features.dtype, device=features.device)
    for start, dist in block_distances(features, features, block):
        # The k+1 smallest distances include the point itself at distance 0.
        radii[start : start + dist.shape[0]] = dist.kthvalue(k + 1, dim=1).values
    return radii


def manifold_coverage(
    points: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, block: int = 1024
) -> torch.Tensor:
    """Share of ``points`` inside at least one ball ``(support[j], radii[j])``."""
    inside = 0
    for _, dist in block_distances(points, support, block):
        inside += (dist <= radii.unsqueeze(0)).any(dim=1).sum().item()
    return torch.tensor(inside / max(1, points.shape[0]), dtype=torch.float64)


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, block: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Improved precision and recall of ``fake`` against ``real`` features, both ``(N, d)``.

    Args:
        real: features of real samples.
        fake: features of generated samples.
        k: neighbourhood size; 3 as in the paper.
        block: rows per distance block.

    Returns:
        ``(precision, recall)`` as float64 scalars in [0, 1].
    """
    real, fake = real.double(), fake.double()
    precision = manifold_coverage(fake, real, knn_radii(real, k, block), block)
    recall = manifold_coverage(real, fake, knn_radii(fake, k, block), block)
    return precision, recall

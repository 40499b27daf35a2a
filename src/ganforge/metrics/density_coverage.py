"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
Generative Models").

Only the real set defines the manifold: every real point ``X_i`` carries the ball
``B(X_i, NND_k(X_i))`` reaching its k-th nearest real neighbour (the radii of improved precision
and recall, :func:`ganforge.metrics.precision_recall.knn_radii`). With ``N`` real and ``M``
generated points,

* density  = 1/(kM) · Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))]: how many real balls hold a generated
  point on average, divided by k (about 1 when fakes follow the real distribution; above 1 when
  they crowd dense real regions), and
* coverage = 1/N · Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))]: the share of real balls holding at least
  one generated point.

Membership is strict (``distance < radius``), as in the authors' ``prdc.compute_prdc``
(clovaai/generative-evaluation-prdc), whose values these are on the same features.
"""

from __future__ import annotations

import torch

from ganforge.metrics.precision_recall import block_distances, knn_radii


def density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = 5, block: int = 1024
) -> tuple[float, float]:
    """``(density, coverage)`` of ``fake`` against ``real`` features, both ``(N, d)``.

    Args:
        real: features of real samples (more than ``k`` of them).
        fake: features of generated samples.
        k: neighbourhood size; 5 as in the paper.
        block: real rows per distance block (memory ``block * len(fake)``).
    """
    real, fake = real.double(), fake.double()
    radii = knn_radii(real, k, block)
    inside, covered = 0, 0
    for start, dist in block_distances(real, fake, block):  # rows: real points, columns: fakes
        within = dist < radii[start : start + dist.shape[0]].unsqueeze(1)
        inside += int(within.sum())
        covered += int(within.any(dim=1).sum())
    return inside / (k * fake.shape[0]), covered / real.shape[0]

"""Mode-collapse metrics: modes captured, sample quality and KL to the uniform mode histogram.

2-D mixtures follow PacGAN's released ``MetricLogger`` (Lin et al. 2018, arXiv:1712.04086,
github.com/fjxmlzn/PacGAN ``synthetic_data_experiments/PacGAN/pacgan/extensions.py``):
each sample goes to its nearest mean by the sigma-normalized distance ``||x - mu|| / sigma``;
it is *high quality* when that distance is below 3; a mode is *captured* when at least one
high-quality sample is assigned to it. The mode histogram counts high-quality samples only
(low-quality ones belong to no mode), and KL is taken between that normalized histogram and
the uniform distribution over the K modes.

Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017) counts the 1,000 digit triples the
classifier reads in the three channels, with KL between their histogram and the uniform one.
:func:`digit_frequencies` and :func:`modes_if_independent` tell the two ways of missing triples
apart: channels that draw some digits rarely (the count expected from the per-channel
frequencies alone is low too) or channels that depend on each other (it is not).
"""

from __future__ import annotations

import torch


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform over ``len(counts)`` bins) of the histogram ``counts``, in nats.

    A uniform histogram gives 0, one filled bin gives ``log K``; an empty histogram has no
    distribution and gives ``nan``.
    """
    counts = counts.double()
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float((p * (p * len(counts)).log()).sum())


def assign_modes(
    samples: torch.Tensor, means: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest mean of every sample and its distance in units of ``sigma``.

    Args:
        samples: points ``(N, d)``.
        means: mode centres ``(K, d)``.
        sigma: the modes' common standard deviation.

    Returns:
        ``(index (N,) int64, distance (N,) float)``.
    """
    dist = torch.cdist(samples.double(), means.double().to(samples.device)) / sigma
    nearest, index = dist.min(dim=1)
    return index, nearest


def mode_stats(
    samples: torch.Tensor, means: torch.Tensor, sigma: float, threshold: float = 3.0
) -> dict[str, float]:
    """PacGAN's mixture metrics on generated points.

    Args:
        samples: generated points ``(N, d)``.
        means: mode centres ``(K, d)``.
        sigma: the modes' standard deviation.
        threshold: distance in sigmas within which a sample is high quality (3 in PacGAN).

    Returns:
        ``modes`` (captured, out of K), ``high_quality`` (share of samples within
        ``threshold`` sigmas of their nearest mode) and ``kl`` (KL of the histogram of
        high-quality samples over modes to uniform; ``nan`` when there are none).
    """
    index, distance = assign_modes(samples, means, sigma)
    good = distance < threshold
    counts = torch.bincount(index[good], minlength=len(means))
    return {
        "modes": float((counts > 0).sum()),
        "high_quality": float(good.double().mean()) if len(samples) else float("nan"),
        "kl": kl_to_uniform(counts),
    }


def stacked_mnist_modes(labels: torch.Tensor, num_modes: int = 1000) -> dict[str, float]:
    """Modes covered and KL(p || uniform) of Stacked MNIST labels ``100 d1 + 10 d2 + d3``.

    Args:
        labels: predicted mode of every generated sample, ints in ``[0, num_modes)``.
        num_modes: number of modes (1,000 for three stacked digits).
    """
    counts = torch.bincount(labels.long().flatten(), minlength=num_modes)
    if len(counts) > num_modes:
        raise ValueError(f"labels must be in [0, {num_modes}); got max {int(labels.max())}")
    return {"modes": float((counts > 0).sum()), "kl": kl_to_uniform(counts)}


def stacked_labels(digits: torch.Tensor) -> torch.Tensor:
    """Mode ids ``100 d1 + 10 d2 + d3`` from per-channel digits ``(N, 3)``."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def stacked_mnist_stats(digits: torch.Tensor) -> dict[str, float]:
    """``modes``, ``kl`` (:func:`stacked_mnist_modes`) and ``modes_if_independent``
    (:func:`modes_if_independent` of :func:`digit_frequencies`) of per-channel digits ``(N, 3)``."""
    stats = stacked_mnist_modes(stacked_labels(digits))
    stats["modes_if_independent"] = modes_if_independent(digit_frequencies(digits), len(digits))
    return stats


def digit_frequencies(digits: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """``(C, num_classes)`` frequency of each digit per channel, from per-channel digits ``(N, C)``."""
    counts = torch.stack([torch.bincount(d.long(), minlength=num_classes) for d in digits.T])
    return counts.double() / len(digits)


def modes_if_independent(frequencies: torch.Tensor, n: int) -> float:
    """Triples expected to be drawn at least once in ``n`` samples if the channels were
    independent with these per-channel digit ``frequencies`` (``(C, 10)``, each row summing to 1):
    the sum over triples of ``1 - (1 - p)^n``, ``p`` the product of the channels' frequencies."""
    joint = frequencies[0]
    for row in frequencies[1:]:
        joint = (joint[..., None] * row).flatten()
    return float((1 - (1 - joint.double()) ** n).sum())

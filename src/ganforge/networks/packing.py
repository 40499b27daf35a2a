"""PacGAN packing (Lin et al. 2018, "PacGAN: The power of two samples in generative
adversarial networks", arXiv:1712.04086).

A packed discriminator judges ``m`` samples at once: the batch ``(N, C, ...)`` becomes
``(N / m, m * C, ...)`` by concatenating consecutive samples along the channel (image) or
feature (vector) axis, so D returns ``N / m`` logits. Since every sample of a pack comes from
the same source (all real or all generated), D can see the lack of diversity that a
collapsed generator shows within a pack.
"""

from __future__ import annotations

import torch


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """Concatenate groups of ``pack`` consecutive samples along axis 1.

    Args:
        x: a batch ``(N, C, ...)`` with ``N`` divisible by ``pack``.
        pack: samples per pack (1 returns ``x`` unchanged).

    Returns:
        ``(N / pack, pack * C, ...)``: pack ``i`` holds samples ``i*pack ... i*pack + pack - 1``
        in that order along axis 1.

    Raises:
        ValueError: if ``N`` is not a multiple of ``pack``.
    """
    if pack == 1:
        return x
    n = x.shape[0]
    if n % pack:
        raise ValueError(
            f"a discriminator with pack={pack} needs a batch size divisible by {pack}; got {n} samples"
        )
    return x.reshape(n // pack, pack * x.shape[1], *x.shape[2:])

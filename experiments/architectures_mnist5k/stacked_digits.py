"""Which digits a Stacked MNIST generator draws in each channel, and what that costs in modes.

Usage (from the repository root):
    .venv/bin/python experiments/architectures_mnist5k/stacked_digits.py CHECKPOINT [N]

Draws N samples (26,000, the protocol's) from the checkpoint's EMA generator, reads each channel
with the offline digit classifier as the mode count does, and prints the mode count and KL, each
channel's digit frequencies (about 0.1 each for real stacks), and the count those frequencies alone
would give if the channels were independent (``modes_if_independent``, which training logs too).
A count near that one means the missing triples come from digits a channel rarely draws.
"""

from __future__ import annotations

import sys

import torch

from ganforge.metrics.domain import load_digit_classifier, predict_channel_digits
from ganforge.metrics.modes import digit_frequencies, stacked_mnist_stats
from ganforge.utils.checkpoint import load_generator


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 26_000
    generator, config = load_generator(sys.argv[1])
    classifier = load_digit_classifier()
    z = torch.randn(n, int(config["model"]["latent_dim"]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = torch.cat([generator(z[i : i + 1000], None).float() for i in range(0, n, 1000)])
        digits = predict_channel_digits(classifier, images)
    stats = stacked_mnist_stats(digits)
    print(f"{n} samples: {stats['modes']:.0f} modes of 1,000, KL {stats['kl']:.3f}")
    print("digit     " + " ".join(f"{d:>5d}" for d in range(10)))
    for channel, row in zip(("red", "green", "blue"), digit_frequencies(digits), strict=True):
        print(f"{channel:<9} " + " ".join(f"{f:5.3f}" for f in row.tolist()))
    print(
        f"modes if the channels were independent with these frequencies: {stats['modes_if_independent']:.0f}"
    )


if __name__ == "__main__":
    main()

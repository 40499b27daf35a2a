"""Fixed views of an image shown to D in place of the image (``augment=luminance``).

Unlike DiffAugment and ADA these are not random: every image D sees, real or generated, in D's
step and in G's, is seen the same way, and G learns through the view (it is differentiable).
"""

from __future__ import annotations

import torch
from torch import nn

# ITU-R BT.601 luma weights of R, G and B.
BT601 = (0.299, 0.587, 0.114)


class Luminance(nn.Module):
    """The image's luminance (BT.601 luma of its R, G, B channels) repeated to 3 channels.

    A discriminator behind it cannot read colours, only the structure of light and dark: texture,
    flat regions, edges and outlines. White-box cartoonization (Wang and Yu, CVPR 2020) judges its
    "texture representation" so, so that colour does not dominate what its discriminator learns.
    Grey images (1 channel) are their own luminance and pass unchanged.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.tensor(BT601).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            return x
        if x.shape[1] != 3:
            raise ValueError(
                f"augment=luminance needs RGB or grey images (3 or 1 channels); got {x.shape[1]}"
            )
        return (x * self.weights.to(x.dtype)).sum(1, keepdim=True).expand_as(x)

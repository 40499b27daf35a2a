"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same augmentation ``T`` is applied to every image D sees, real and generated, in D's
step and in G's step: ``D(T(x))`` and ``D(T(G(z)))``. Each image draws its own random
parameters (as in the official code); "the same" means the same policy and the same
parameter distributions, not the same draw. All ops are differentiable, so G learns through
``T``. Parameter ranges follow the official implementation, for images in [-1, 1]:
brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), translation by up
to 1/8 of the side with zero fill, cutout of a half-side square (zeroed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ganforge.augment import ops
from ganforge.config import check_value

POLICIES = ("color", "translation", "cutout")


class DiffAugment(nn.Module):
    """Applies the policy's transforms, in order, to a batch of images.

    Args:
        policy: comma-separated transforms out of ``color``, ``translation``, ``cutout``;
            or a list of them; the paper's choice for few-shot data is all three.
        translation_ratio: largest shift as a fraction of the image side.
        cutout_ratio: side of the cut square as a fraction of the image side.
    """

    def __init__(
        self,
        policy: str | Sequence[str] = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ):
        super().__init__()
        check_value("model.augment.policy", policy)
        names = policy.split(",") if isinstance(policy, str) else policy
        self.policy = [p.strip() for p in names if p.strip()]
        self.translation_ratio, self.cutout_ratio = translation_ratio, cutout_ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        for name in self.policy:
            if name == "color":
                u = torch.rand(3, n, device=x.device)
                x = ops.adjust_brightness(x, u[0] - 0.5)
                x = ops.adjust_saturation(x, u[1] * 2)
                x = ops.adjust_contrast(x, u[2] + 0.5)
            elif name == "translation":
                sx, sy = int(w * self.translation_ratio + 0.5), int(h * self.translation_ratio + 0.5)
                shift_x = torch.randint(-sx, sx + 1, (n,), device=x.device)
                shift_y = torch.randint(-sy, sy + 1, (n,), device=x.device)
                x = ops.translate(x, shift_x, shift_y, fill="zeros")
            else:
                size = (int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5))
                # The square's centre is uniform over the image, so it may stick out of an edge.
                top = torch.randint(0, h + (1 - size[0] % 2), (n,), device=x.device) - size[0] // 2
                left = torch.randint(0, w + (1 - size[1] % 2), (n,), device=x.device) - size[1] // 2
                x = ops.cutout(x, size, top, left)
        return x

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)}"

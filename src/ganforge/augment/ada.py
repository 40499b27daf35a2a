"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", stylegan2-ada).

Every image D sees (real and generated, in D's and G's steps) passes through a pipeline
whose transforms each fire with probability ``p``, independently per image and per transform.
``p`` follows the overfitting heuristic ``r_t = E[sign(D(x_real))]``: every ``interval``
batches, ``p += sign(r_t - target) * images_seen / speed_images``, clipped to [0, 1], so it
can go from 0 to 1 in ``speed_images`` images (500k in the paper) and settles where
``r_t`` is near ``target`` (0.6). ``p`` is a buffer, so it is saved in every checkpoint.

This is a differentiable subset of the paper's pipeline: x-flip, 90-degree rotations and
integer translation (the "pixel blitting" group), brightness, contrast and saturation (part
of the colour group). Geometric warps, luma flip, hue rotation and filtering are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ganforge.augment import ops
from ganforge.config import check_value

TRANSFORMS = ("xflip", "rotate90", "translation", "brightness", "contrast", "saturation")


class AdaptiveAugment(nn.Module):
    """ADA's augmentation pipeline and its probability controller.

    Args:
        target: the value of ``r_t`` to hold; above it D is deemed to overfit and ``p`` rises.
        speed_images: images over which ``p`` can move by 1.
        interval: batches between adjustments of ``p``.
        p: the initial probability.
        transforms: comma-separated subset of :data:`TRANSFORMS` (or a list).
        adaptive: ``False`` keeps ``p`` fixed (the paper's fixed-p baselines).
    """

    def __init__(
        self,
        target: float = 0.6,
        speed_images: int = 500_000,
        interval: int = 4,
        p: float = 0.0,
        transforms: str | Sequence[str] = ",".join(TRANSFORMS),
        adaptive: bool = True,
    ):
        super().__init__()
        for key, value in (("target", target), ("speed_images", speed_images), ("interval", interval)):
            check_value(f"model.augment.{key}", value)
        check_value("model.augment.p", p)
        check_value("model.augment.transforms", transforms)
        names = transforms.split(",") if isinstance(transforms, str) else transforms
        self.transforms = [t.strip() for t in names if t.strip()]
        self.target, self.speed_images, self.interval, self.adaptive = (
            target,
            speed_images,
            interval,
            adaptive,
        )
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # the last r_t, for logging
        # Running sums since the last adjustment: sum of sign(D(real)), images, batches.
        self.register_buffer("_stats", torch.zeros(3, dtype=torch.float64))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor) -> None:
        """Record D's logits on (augmented) reals; adjust ``p`` every ``interval`` batches."""
        if not self.adaptive:
            return
        self._stats += torch.tensor(
            [real_logits.sign().sum().item(), real_logits.numel(), 1.0],
            dtype=torch.float64,
            device=self._stats.device,
        )
        if self._stats[2] < self.interval:
            return
        self.rt.fill_(float(self._stats[0] / self._stats[1]))
        step = math.copysign(1.0, float(self.rt) - self.target) * float(self._stats[1]) / self.speed_images
        if float(self.rt) == self.target:
            step = 0.0
        self.p.copy_((self.p + step).clamp(0.0, 1.0))
        self._stats.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = float(self.p)
        if p <= 0.0:
            return x
        n, _, h, w = x.shape
        dev = x.device

        def fire() -> torch.Tensor:
            return torch.rand(n, device=dev) < p

        for name in self.transforms:
            on = fire()
            if name == "xflip":
                x = ops.flip_x(x, on & (torch.rand(n, device=dev) < 0.5))
            elif name == "rotate90" and h == w:
                x = ops.rotate90(x, torch.randint(0, 4, (n,), device=dev) * on)
            elif name == "translation":
                # Up to 1/8 of the side, reflect-padded, as ADA's integer translation.
                shift = (
                    (torch.rand(2, n, device=dev) * 2 - 1) * 0.125 * torch.tensor([[w], [h]], device=dev)
                ).round()
                shift = shift * on
                x = ops.translate(x, shift[0], shift[1], fill="reflect")
            elif name == "brightness":
                x = ops.adjust_brightness(x, torch.randn(n, device=dev) * 0.2 * on)
            elif name == "contrast":
                x = ops.adjust_contrast(x, torch.where(on, torch.exp2(torch.randn(n, device=dev) * 0.5), 1.0))
            elif name == "saturation":
                x = ops.adjust_saturation(x, torch.where(on, torch.exp2(torch.randn(n, device=dev)), 1.0))
        return x

    def extra_repr(self) -> str:
        return f"target={self.target}, transforms={','.join(self.transforms)}"

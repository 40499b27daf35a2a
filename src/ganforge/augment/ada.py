"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", stylegan2-ada).

Every image D sees (real and generated, in D's and G's steps) passes through a pipeline
whose transforms each fire with probability ``p``, independently per image and per transform.
``p`` follows the overfitting heuristic ``r_t = E[sign(D(x_real))]``: every ``interval``
batches, ``p += sign(r_t - target) * real_images_seen / speed_images``, clipped to [0, 1], so it
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
        # Running sums since the last adjustment, on the device (no host sync per step):
        # sum of sign(D(real)), logits, batches, real images.
        self.register_buffer("_stats", torch.zeros(4, dtype=torch.float64))
        self._batches = 0  # host copy of _stats[2]: whether p is due needs no device read

    def after_d_step(self, real_logits: torch.Tensor, images: int) -> dict[str, torch.Tensor]:
        """The GAN scheme's hook after each D step: update ``p`` from D's logits on the ``images``
        real images of the step; returns the values to log."""
        self.update(real_logits, images)
        return {"train/ada_p": self.p.clone(), "train/ada_rt": self.rt.clone()}

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, images: int | None = None) -> None:
        """Record D's logits on ``images`` (augmented) real images; adjust ``p`` every ``interval`` batches.

        ``r_t`` is the mean sign over D's outputs (one per image, per pack of a packed D or per patch
        of a PatchGAN); ``p`` moves by the number of real *images* seen, as stylegan2-ada's
        ``batch_size * ada_interval / (ada_kimg * 1000)`` does, so a packed D does not slow it down.
        ``images`` defaults to one per logit.
        """
        if not self.adaptive:
            return
        images = real_logits.numel() if images is None else images
        signs = real_logits.detach().sign().sum().to(torch.float64)
        counts = torch.tensor(
            [real_logits.numel(), 1.0, images], dtype=torch.float64, device=self._stats.device
        )
        self._stats += torch.cat([signs.reshape(1).to(self._stats.device), counts])
        self._batches += 1
        if self._batches < self.interval:
            return
        signs, logits, _, seen = self._stats.tolist()
        self.rt.fill_(signs / logits)
        step = 0.0 if signs / logits == self.target else math.copysign(1.0, signs / logits - self.target)
        self.p.copy_((self.p + step * seen / self.speed_images).clamp(0.0, 1.0))
        self._stats.zero_()
        self._batches = 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        stats = state_dict.get(prefix + "_stats")
        if stats is not None and stats.numel() == 3:  # checkpoints from before images were counted
            state_dict[prefix + "_stats"] = torch.cat([stats, stats[1:2]])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._batches = int(self._stats[2])

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
                # a 3-D scale of the colour vector about 0 (mid-grey), as stylegan2-ada's colour transform
                x = ops.scale_colours(x, torch.where(on, torch.exp2(torch.randn(n, device=dev) * 0.5), 1.0))
            elif name == "saturation":
                x = ops.adjust_saturation(x, torch.where(on, torch.exp2(torch.randn(n, device=dev)), 1.0))
        return x

    def extra_repr(self) -> str:
        return f"target={self.target}, transforms={','.join(self.transforms)}"

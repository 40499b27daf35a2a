"""The history of generated images that CycleGAN's discriminators train on.

Shrivastava et al. 2017 ("Learning from Simulated and Unsupervised Images through
Adversarial Training") update D with a buffer of earlier generated images rather than only
the latest ones, which damps oscillation; CycleGAN (Zhu et al. 2017) keeps 50.
"""

from __future__ import annotations

import torch


class ImagePool:
    """A buffer of up to ``size`` generated images.

    :meth:`query` stores each new image while the pool fills; once it is full, each image is
    with probability 1/2 returned as is, otherwise swapped for a random stored one (which is
    returned) and stored in its place. ``size=0`` returns the input unchanged.

    Args:
        size: capacity of the pool (CycleGAN: 50).
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size must be >= 0; got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The batch D should see for this step (detached), updating the pool.

        Args:
            images: ``(N, C, H, W)`` generated images.
            generator: random source for the coin flips and slots (the global one by default).
        """
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator).item() < 0.5:
                slot = int(torch.randint(0, self.size, (), generator=generator).item())
                out.append(self.images[slot].to(image.device, copy=True))
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The stored images (for a checkpoint: a resumed run draws from the same history)."""
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": images}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s images (moved to the generator's device when drawn)."""
        images = state["images"]
        self.images = [image.clone() for image in images][: self.size] if images.numel() else []

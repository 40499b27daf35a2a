"""Turning generated tensors into files and dashboard images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to uint8 with rounding (not truncation), as reference metric code does."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """A ``(C, H, W)`` uint8 grid of a batch of [-1, 1] images."""
    nrow = nrow or max(1, int(round(images.shape[0] ** 0.5)))
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, pad_value=-1)
    return to_uint8(grid)


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write a ``(C, H, W)`` uint8 tensor (C = 1 or 3) as PNG, creating folders; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = image.cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))
    Image.fromarray(arr).save(path)
    return path


def log_image(trainer, key: str, image: torch.Tensor, step: int) -> None:
    """Send a ``(C, H, W)`` uint8 image to every logger that shows images (TensorBoard, wandb)."""
    for logger in trainer.loggers:
        name = type(logger).__name__
        if name == "TensorBoardLogger":
            logger.experiment.add_image(key, image, global_step=step)
        elif name == "WandbLogger":
            logger.log_image(key=key, images=[image.permute(1, 2, 0).cpu().numpy()], step=step)


def save_scatter(
    points: torch.Tensor, path: str | Path, centres: torch.Tensor | None = None, title: str | None = None
) -> Path:
    """Scatter plot of 2-D points as PNG (matplotlib Agg), with mode ``centres`` marked if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, c="black", linewidths=0)
    if centres is not None:
        c = centres.detach().float().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], s=40, marker="x", c="red", linewidths=1)
        # Fixed axes around the modes, so the frames of one run compare at a glance.
        span = float(abs(c).max()) * 1.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

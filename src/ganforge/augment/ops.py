"""Per-sample, differentiable image transforms shared by DiffAugment and ADA.

Every op takes a batch ``(N, C, H, W)`` and per-sample parameters of shape ``(N,)``; the
output is differentiable with respect to the images, so the generator receives gradients
through the augmentation (Zhao et al. 2020; Karras et al. 2020).
"""

from __future__ import annotations

import torch


def _reflect(idx: torch.Tensor, size: int) -> torch.Tensor:
    # Mirror indices into [0, size) without repeating the edge pixel (valid for |shift| < size).
    idx = idx.abs()
    return (size - 1) - ((size - 1) - idx).abs()


def translate(
    x: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor, fill: str = "zeros"
) -> torch.Tensor:
    """Shift each image by whole pixels: ``out[i, j] = x[i - shift_y, j - shift_x]``.

    Args:
        x: images ``(N, C, H, W)``.
        shift_x: horizontal shifts in pixels, integer tensor ``(N,)``.
        shift_y: vertical shifts in pixels, integer tensor ``(N,)``.
        fill: ``"zeros"`` (DiffAugment) or ``"reflect"`` (ADA) for pixels shifted in.
    """
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - shift_y.long()[:, None]  # (N, H)
    cols = torch.arange(w, device=x.device)[None, :] - shift_x.long()[:, None]  # (N, W)
    if fill == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
        mask = None
    elif fill == "zeros":
        mask = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    else:
        raise ValueError(f"fill must be 'zeros' or 'reflect'; got {fill!r}")
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return out if mask is None else out * mask[:, None].to(x.dtype)


def adjust_brightness(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add ``delta[n]`` to every pixel of image ``n``."""
    return x + delta.view(-1, 1, 1, 1).to(x.dtype)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's distance from its channel mean (a no-op on grey images)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * factor.view(-1, 1, 1, 1).to(x.dtype) + mean


def scale_colours(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale every pixel's colour vector by ``factor[n]`` about 0, mid-grey in [-1, 1] (ADA's contrast:
    stylegan2-ada's colour transform ``scale3d(c, c, c)``, applied to images in [-1, 1])."""
    return x * factor.view(-1, 1, 1, 1).to(x.dtype)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each image's distance from its mean intensity (DiffAugment's contrast)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor.view(-1, 1, 1, 1).to(x.dtype) + mean


def cutout(x: torch.Tensor, size: tuple[int, int], top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Zero a ``size`` rectangle whose top-left corner is ``(top[n], left[n])`` (may lie partly outside)."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top, left = top.view(-1, 1, 1), left.view(-1, 1, 1)
    inside = (rows >= top) & (rows < top + size[0]) & (cols >= left) & (cols < left + size[1])
    return x * (~inside)[:, None].to(x.dtype)


def flip_x(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images where ``flip`` is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate image ``n`` by ``k[n]`` quarter turns (square images)."""
    out = x
    for turns in (1, 2, 3):
        out = torch.where((k == turns).view(-1, 1, 1, 1), torch.rot90(x, turns, dims=(2, 3)), out)
    return out

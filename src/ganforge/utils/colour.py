"""Colour to grey: the one conversion used by data loading, metrics and the digit classifier.

ITU-R BT.601 luma, ``Y = 0.299 R + 0.587 G + 0.114 B``, is what Pillow's ``convert("L")``,
torchvision's ``rgb_to_grayscale`` and OpenCV's ``COLOR_RGB2GRAY`` compute, so a colour image
turned grey here matches the grey file any of those tools would write. It weights the channels
by perceived brightness, so a tinted stroke keeps its contrast (a channel mean treats blue like
green). On uint8 images it rounds exactly as Pillow does (16-bit fixed-point weights), so a
colour file decoded to grey and a colour tensor made grey later give the same bytes.

Imports only torch, so the networks that use it stay liftable.
"""

from __future__ import annotations

import torch

LUMA_BT601 = (0.299, 0.587, 0.114)
# The same weights in 16-bit fixed point (round(w * 65536), summing to 65536), as Pillow's rgb2l.
_LUMA_FIXED = (19595, 38470, 7471)


def rgb_to_grey(images: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of ``(..., 3, H, W)`` images as ``(..., 1, H, W)`` of the same dtype.

    Args:
        images: uint8 in [0, 255] (rounded as Pillow rounds) or floats in any affine range
            ([0, 1], [-1, 1]: the weights sum to one, so the range is kept).

    Raises:
        ValueError: the channel dimension (third from last) is not 3.
    """
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"rgb_to_grey needs 3 channels in dim -3; got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        weights = torch.tensor(_LUMA_FIXED, dtype=torch.int32, device=images.device).view(3, 1, 1)
        luma = ((images.to(torch.int32) * weights).sum(-3, keepdim=True) + (1 << 15)) >> 16
        return luma.to(torch.uint8)
    weights = torch.tensor(LUMA_BT601, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * weights).sum(-3, keepdim=True)

"""A deterministic ink style for digits: the ground truth of the ``digits2ink`` benchmark.

:func:`ink_style` renders white-on-black grey digits as coloured ink on paper, with spatial
structure a translator has to learn from neighbourhoods, not from single pixels:

1. the strokes are thickened by one pixel (a 3x3 grey dilation);
2. the ink's colour follows a ramp over the thickened stroke's value: its soft rim is
   ``rim`` (orange by default), its core ``core`` (crimson);
3. a one-pixel dark ``outline`` surrounds the thickened stroke;
4. a soft drop ``shadow`` of the outlined digit falls ``shadow_offset`` px down and right;
5. everything lies on ``paper`` (cream).

Every step is a fixed function of the input pixels, so the translation of every held-out
digit is known and PSNR/SSIM against it measure how well a model learned the style.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAPER = (0.97, 0.94, 0.86)
CORE = (0.78, 0.08, 0.22)
RIM = (1.0, 0.62, 0.1)
OUTLINE = (0.08, 0.08, 0.25)
SHADOW = (0.55, 0.52, 0.5)


def _colour(rgb, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def dilate(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Grey dilation of ``(N, 1, H, W)`` values with a ``(2 radius + 1)`` square."""
    return F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius)


def shift(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``x`` moved ``offset`` px down and right, zeros entering from the top left."""
    if offset == 0:
        return x
    return F.pad(x, (offset, 0, offset, 0))[..., : x.shape[-2], : x.shape[-1]]


def ink_style(
    digits: torch.Tensor,
    paper=PAPER,
    core=CORE,
    rim=RIM,
    outline=OUTLINE,
    shadow=SHADOW,
    shadow_offset: int = 2,
    shadow_strength: float = 0.6,
) -> torch.Tensor:
    """Render grey digits in the ink style.

    Args:
        digits: ``(N, 1, H, W)`` white-on-black digits in [0, 1].
        paper, core, rim, outline, shadow: RGB colours in [0, 1].
        shadow_offset: drop-shadow offset in pixels (down and right).
        shadow_strength: opacity of the shadow.

    Returns:
        ``(N, 3, H, W)`` float in [0, 1].
    """
    if digits.dim() != 4 or digits.shape[1] != 1:
        raise ValueError(f"ink_style renders (N, 1, H, W) grey digits; got shape {tuple(digits.shape)}")
    stroke = dilate(digits.clamp(0, 1))  # 1. thickened
    ring = (dilate(stroke) - stroke).clamp(0, 1)  # 3. one-pixel outline around it
    soft = F.avg_pool2d(dilate(stroke), 3, stride=1, padding=1, count_include_pad=False)
    drop = shift(soft, shadow_offset) * shadow_strength  # 4. soft shadow of the outlined digit
    ink = _colour(rim, digits) + (_colour(core, digits) - _colour(rim, digits)) * stroke  # 2. ramp
    out = _colour(paper, digits).expand_as(ink)
    out = out + (_colour(shadow, digits) - out) * drop
    out = out + (_colour(outline, digits) - out) * ring
    out = out + (ink - out) * stroke
    return out.clamp(0, 1)

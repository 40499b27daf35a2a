"""Image decoding and the resize/crop/normalise pipeline shared by file-based datasets.

Every image is converted to the model's channel count whatever its mode: 16-bit greys are
rescaled to 8 bits, palette images are expanded, transparent images are composited on white,
and colour becomes grey by :func:`ganforge.utils.colour.rgb_to_grey` (BT.601 luma, as the
metrics convert colour). A file that cannot be decoded raises :class:`ImageLoadError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from ganforge.utils.colour import rgb_to_grey

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageLoadError(ValueError):
    """An image file is missing, truncated or not an image; the message names the file."""


def _flatten_alpha(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert a decoded PIL image of any mode to ``L`` (1 channel) or ``RGB`` (3 channels)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(
            np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8), "L"
        )
    elif img.mode == "P" and "transparency" in img.info or img.mode in ("RGBA", "LA", "PA"):
        img = _flatten_alpha(img)
    if channels == 1 and img.mode not in ("L", "1"):
        # Colour to grey through the same function the metrics use (ganforge.utils.colour).
        rgb = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
        return Image.fromarray(rgb_to_grey(rgb)[0].numpy(), "L")
    return img.convert("L" if channels == 1 else "RGB")


def load_image(path: str | Path, channels: int) -> Image.Image:
    """Decode an image file into ``L`` or ``RGB``.

    Raises:
        ImageLoadError: the file is missing, not an image or truncated.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return to_mode(img, channels)
    except FileNotFoundError as err:
        raise ImageLoadError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"cannot read image {path}: {err}") from err


def resize_batch(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """Resize an ``(N, C, H, W)`` float batch to ``img_size`` px with antialiased bilinear."""
    if images.shape[-1] == img_size and images.shape[-2] == img_size:
        return images
    return torch.nn.functional.interpolate(
        images, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True
    ).clamp(-1, 1)


def image_to_tensor(path: Path, channels: int):
    """Decode one image file to ``(C, H, W)`` float in [-1, 1] (any mode, any size)."""
    arr = np.asarray(load_image(path, channels), dtype=np.float32)
    tensor = torch.from_numpy(arr).view(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
    return tensor / 127.5 - 1.0


def image_transform(img_size: int, crop: str = "center") -> v2.Compose:
    """Resize the short side to ``img_size``, crop a square, and scale to [-1, 1].

    Args:
        img_size: output side in pixels; smaller images are upscaled first.
        crop: ``"center"`` or ``"random"`` (a random square crop, light augmentation).
    """
    cropper = v2.CenterCrop(img_size) if crop == "center" else v2.RandomCrop(img_size)
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(img_size, antialias=True),
            cropper,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5], [0.5]),
        ]
    )

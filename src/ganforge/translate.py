"""``ganforge-translate``: translate images with a CycleGAN, pix2pix or CUT/FastCUT checkpoint alone.

Usage:
    ganforge-translate ckpt=outputs/cyclegan_photo2painting/<run>/checkpoints/last.ckpt \\
        input=photos/ out=paintings/ direction=AtoB
    ganforge-translate ckpt=... input=one_image.jpg out=out/ direction=BtoA   # CycleGAN only

Images of any size and mode are translated at their native resolution: the generators are
fully convolutional, so each image is reflect-padded up to the multiple of pixels the
network needs (4 for the ResNet translator, ``2**num_downs`` for the U-Net), translated, and
cropped back. Every output keeps its input's file name (and subfolder) and size; with
``resize=true`` images are instead scaled to the training size and back, which matches the
scale of the training crops. The networks are rebuilt from the config stored in the checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.data.index import find_images
from ganforge.data.transforms import IMAGE_EXTENSIONS, ImageLoadError, image_to_tensor, resize_batch
from ganforge.utils.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, load_submodule
from ganforge.utils.cli import parse_key_values, print_error
from ganforge.utils.images import save_png, to_uint8

USAGE = "usage: ganforge-translate ckpt=<path> input=<folder or file> out=<folder> [direction=AtoB|BtoA] [resize=false]"
DEFAULTS = {"ckpt": None, "input": None, "out": None, "direction": "AtoB", "resize": False}
PREFIXES = {"AtoB": "generator", "BtoA": "generator_ba"}
TRANSLATION_SCHEMES = ("cyclegan", "pix2pix", "cut")  # the schemes whose checkpoints hold translators


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments over :data:`DEFAULTS`; unknown or missing keys raise."""
    args = parse_key_values(argv, DEFAULTS)
    for key in ("ckpt", "input", "out"):
        if not args[key]:
            raise ValueError(f"{key}=<...> is required")
    if args["direction"] not in PREFIXES:
        raise ValueError(f"direction must be AtoB or BtoA; got {args['direction']!r}")
    return args


def load_translator(
    ckpt_path: str | Path, direction: str = "AtoB", ckpt: dict | None = None
) -> tuple[torch.nn.Module, dict]:
    """The generator of one direction from an image-to-image checkpoint (its moving average where
    the run kept one), and the run config.

    ``ckpt`` is the checkpoint at ``ckpt_path`` when the caller has loaded it already (then the
    file is not read again); ``ckpt_path`` still names it in the messages.

    Raises:
        CheckpointError: the file is missing, truncated, foreign, or not an image-to-image
            checkpoint; or it has no generator for ``direction`` (pix2pix, CUT: AtoB only).
    """
    ckpt = ckpt if ckpt is not None else load_checkpoint(ckpt_path)
    scheme = ckpt["ganforge"].get("scheme", "unknown")
    if scheme == "image2image":  # checkpoints written before CycleGAN and pix2pix were two modules
        scheme = ((ckpt["ganforge"].get("config") or {}).get("model") or {}).get("mode", scheme)
    if scheme not in TRANSLATION_SCHEMES:
        raise CheckpointError(
            f"{ckpt_path} is a '{scheme}' checkpoint, not an image-to-image one (CycleGAN / pix2pix / CUT); "
            "use ganforge-generate for GAN checkpoints"
        )
    if direction == "BtoA" and scheme != "cyclegan":
        raise CheckpointError(f"{ckpt_path} is a {scheme} model, which translates AtoB only")
    config = checkpoint_config(ckpt)
    prefix = f"translators_ema.{direction}"  # the moving average, where the run kept one (model.ema_decay)
    if not any(key.startswith(prefix + ".") for key in ckpt["state_dict"]):
        prefix = PREFIXES[direction]
    return load_submodule(ckpt, config["model"][PREFIXES[direction]], prefix), config


@torch.no_grad()
def translate_image(net: torch.nn.Module, image: torch.Tensor, img_size: int | None = None) -> torch.Tensor:
    """Translate one ``(C, H, W)`` image in [-1, 1] and return it at its own size.

    Args:
        net: a fully convolutional generator (``size_multiple`` says what sides it needs).
        image: the input.
        img_size: when given, translate at ``img_size`` x ``img_size`` and resize back;
            otherwise at native size, reflect-padded to a multiple of ``net.size_multiple``.
    """
    h, w = image.shape[-2:]
    x = image.unsqueeze(0)
    if img_size:
        out = net(resize_batch(x, img_size))
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0].clamp(
            -1, 1
        )
    m = int(getattr(net, "size_multiple", 1))
    pad_h, pad_w = (-h) % m, (-w) % m
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"  # reflect needs padding < size
    out = net(F.pad(x, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else x)
    return out[0, :, :h, :w]


def translate_files(
    ckpt: str | Path, source: str | Path, out: str | Path, direction: str = "AtoB", resize: bool = False
) -> list[Path]:
    """Translate an image file or every image below a folder into ``out``; returns the written paths.

    Raises:
        CheckpointError: see :func:`load_translator`.
        FileNotFoundError: ``source`` does not exist.
        ImageLoadError: an input cannot be decoded (names the file).
    """
    net, config = load_translator(ckpt, direction)
    channels, img_size = int(config["data"]["channels"]), int(config["data"]["img_size"])
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if source.is_file():
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ImageLoadError(f"{source} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        files, root = [source], source.parent
    else:
        files, root = find_images(source), source
    written = []
    for path in files:
        result = translate_image(net, image_to_tensor(path, channels), img_size if resize else None)
        written.append(save_png(to_uint8(result), out / path.relative_to(root)))
    return written


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        written = translate_files(
            args["ckpt"], args["input"], args["out"], args["direction"], bool(args["resize"])
        )
    except (ValueError, CheckpointError, FileNotFoundError) as err:
        print_error("ganforge-translate", err, USAGE)
        sys.exit(2)
    print(f"translated {len(written)} image(s) {args['direction']} into {args['out']}")


if __name__ == "__main__":
    main()

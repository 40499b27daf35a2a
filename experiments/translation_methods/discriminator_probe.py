"""How fast a PatchGAN learns to tell photo2painting's paintings from its photos, with no generator.

In a translation run the discriminator must first learn the two domains apart before its
gradient can tell the translator anything. This trains the PatchGAN alone on that task (real:
the filter's renderings of the training tiles; fake: the untranslated photo tiles), with the
experiments' LSGAN loss, Adam and batch of 8, and prints every 80 iterations its training loss
(0.25 is chance) and its accuracy on tiles it never trained on (300, or a quarter of the tiles
when there are fewer than 1,200; a tile counts as right when its mean patch score is on the right
side of 0.5). The photos and paintings come from different tiles in each batch, as in unpaired
training.

``--directions`` then asks what the trained discriminator rewards, on the held-out photo tiles:
its mean score for each photo changed by one part of the filter (its bilateral smoothing, its
colour rounding halfway or all the way, both) or by a blur or more contrast; and, for the
translator's LSGAN loss ``(D(x) - 1)^2`` on the photos, the cosine between the direction that
loss's gradient asks for and the direction to each changed photo, beside the change of the loss
for a step of 0.05 (root mean square) along that direction.

    python experiments/translation_methods/discriminator_probe.py                   # width 16, 34x34 patches
    python experiments/translation_methods/discriminator_probe.py --width 64 --n-layers 3 --lr 2e-4
    python experiments/translation_methods/discriminator_probe.py --directions
    python experiments/translation_methods/discriminator_probe.py --directions --luminance   # augment=luminance

Trailing arguments are config overrides of ``experiment=cut_photo2painting`` (its data settings
are used), e.g. the multi-scale tiles of the README:
``data.train_photo_sizes=[192,256,320,384,448]``.
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import torch
from photo_tiles import add_common_arguments, training_tiles

from ganforge.augment.views import Luminance
from ganforge.data.painterly import bilateral_smoothing, painterly, quantize
from ganforge.networks.patchgan import PatchDiscriminator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=480, help="iterations (the experiments' run: 480)")
    parser.add_argument("--width", type=int, default=16, help="ndf (the experiments': 16)")
    parser.add_argument(
        "--n-layers", type=int, default=2, help="stride-2 layers: 2 = 34x34 patches, 3 = 70x70"
    )
    parser.add_argument("--norm", default="instance", choices=("instance", "batch", "none"))
    parser.add_argument(
        "--luminance", action="store_true", help="D judges luminance only (augment=luminance's view)"
    )
    parser.add_argument(
        "--directions",
        action="store_true",
        help="then score changed photos and the loss gradient's direction",
    )
    add_common_arguments(parser)
    args = parser.parse_args()

    data, photos, paintings = training_tiles(args)
    order = torch.randperm(len(photos))
    n_held = min(300, len(order) // 4)  # 32 of the experiments' 128 tiles, 300 of the multi-scale ones
    train, held = order[:-n_held], order[-n_held:]
    print(f"{len(train)} training and {len(held)} held-out tiles of {', '.join(data.train_photos)}")

    net = PatchDiscriminator(3, args.width, args.n_layers, norm=args.norm)
    if args.luminance:
        net = torch.nn.Sequential(Luminance(), net)
    opt = torch.optim.Adam(net.parameters(), args.lr, betas=(0.5, 0.999))
    crop = data.img_size

    def crops(tiles: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        top, left = torch.randint(0, tiles.shape[-1] - crop + 1, (2,)).tolist()
        return tiles[index, :, top : top + crop, left : left + crop]

    for it in range(1, args.iters + 1):
        real = crops(paintings, train[torch.randint(0, len(train), (8,))])
        fake = crops(photos, train[torch.randint(0, len(train), (8,))])
        loss = 0.5 * ((net(real) - 1).square().mean() + net(fake).square().mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 80 == 0 or it == args.iters:
            with torch.no_grad():
                on_real = net(crops(paintings, held)).mean((1, 2, 3))
                on_fake = net(crops(photos, held)).mean((1, 2, 3))
            accuracy = ((on_real > 0.5).float().mean() + (on_fake < 0.5).float().mean()).item() / 2
            print(
                f"{it:5d}  train loss {loss.item():.3f}  held-out: D(painting) {on_real.mean():.2f} "
                f"D(photo) {on_fake.mean():.2f}  accuracy {accuracy:.2f}",
                flush=True,
            )
    if args.directions:
        offset = (photos.shape[-1] - crop) // 2
        at = (slice(None), slice(None), slice(offset, offset + crop), slice(offset, offset + crop))
        directions(net, photos[held][at], paintings[held][at], data.painterly_args)


def per_image(images: torch.Tensor, change) -> torch.Tensor:
    """``change`` (an ``(H, W, 3)`` float64 function in [0, 1]) applied to each image in [-1, 1]."""
    arrays = (images.permute(0, 2, 3, 1).double().numpy() + 1) / 2
    changed = np.stack([change(a) for a in arrays]).astype(np.float32)
    return torch.from_numpy(changed * 2 - 1).permute(0, 3, 1, 2)


def directions(
    net: torch.nn.Module, photos: torch.Tensor, paintings: torch.Tensor, filter_args: dict
) -> None:
    """Print what ``net`` rewards on ``photos`` (see the module docstring)."""
    from scipy.ndimage import gaussian_filter

    defaults = {k: v.default for k, v in inspect.signature(painterly).parameters.items() if k != "image"}
    args = {**defaults, **filter_args}

    def smooth(a):  # the filter's first step
        return bilateral_smoothing(a, args["passes"], args["sigma_color"], args["sigma_spatial"])

    def palette(a, share=1.0):  # the filter's colour rounding, all the way or part of it
        return a + share * (quantize(a, args["levels"]) - a)

    changed = {
        "the photo": photos,
        "the painting (the filter's rendering)": paintings,
        "Gaussian blur, sigma 1 px": per_image(photos, lambda a: gaussian_filter(a, (1, 1, 0))),
        "the filter's bilateral smoothing": per_image(photos, smooth),
        "the filter's palette, halfway": per_image(photos, lambda a: palette(a, 0.5)),
        "the filter's palette": per_image(photos, palette),
        "bilateral smoothing, then the palette halfway": per_image(photos, lambda a: palette(smooth(a), 0.5)),
        "contrast x 1.1": (photos * 1.1).clamp(-1, 1),
    }
    with torch.no_grad():
        for name, images in changed.items():
            print(f"mean D score: {net(images).mean():.3f}  {name}")
    x = photos.clone().requires_grad_(True)
    (asked,) = torch.autograd.grad((net(x) - 1).square().mean(), x)
    asked = -asked
    # (the palette halfway lies in the palette's direction: one line for both)
    same_direction = ("the photo", "the filter's palette, halfway")
    towards = {name: images - photos for name, images in changed.items() if name not in same_direction}
    towards["contrast x 1.1"] = photos - photos.mean((2, 3), keepdim=True)  # before the clamp
    with torch.no_grad():
        loss = (net(photos) - 1).square().mean()
        for name, d in towards.items():
            cos = torch.nn.functional.cosine_similarity(asked.flatten(1), d.flatten(1)).mean()
            step = 0.05 * d / d.flatten(1).square().mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
            change = (net(photos + step) - 1).square().mean() - loss
            print(
                f"towards {name}: cosine with the asked direction {cos:+.3f}, loss change for the step {change:+.4f}"
            )


if __name__ == "__main__":
    main()

"""How fast a PatchGAN learns to tell photo2painting's paintings from its photos, with no generator.

In a translation run the discriminator must first learn the two domains apart before its
gradient can tell the translator anything. This trains the PatchGAN alone on that task (real:
the filter's renderings of the training tiles; fake: the untranslated photo tiles), with the
experiments' LSGAN loss, Adam and batch of 8, and prints every 80 iterations its training loss
(0.25 is chance) and its accuracy on tiles it never trained on (300, or a quarter of the tiles
when there are fewer than 1,200; a tile counts as right when its mean patch score is on the right
side of 0.5). The photos and paintings come from different tiles in each batch, as in unpaired
training.

    python experiments/translation_methods/discriminator_probe.py                   # width 16, 34x34 patches
    python experiments/translation_methods/discriminator_probe.py --width 64 --n-layers 3 --lr 2e-4

Trailing arguments are config overrides of ``experiment=cut_photo2painting`` (its data settings
are used), e.g. the multi-scale tiles of the README:
``data.train_photo_sizes=[192,256,320,384,448]``.
"""

from __future__ import annotations

import argparse

import torch
from photo_tiles import add_common_arguments, training_tiles

from ganforge.networks.patchgan import PatchDiscriminator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=480, help="iterations (the experiments' run: 480)")
    parser.add_argument("--width", type=int, default=16, help="ndf (the experiments': 16)")
    parser.add_argument(
        "--n-layers", type=int, default=2, help="stride-2 layers: 2 = 34x34 patches, 3 = 70x70"
    )
    parser.add_argument("--norm", default="instance", choices=("instance", "batch", "none"))
    add_common_arguments(parser)
    args = parser.parse_args()

    data, photos, paintings = training_tiles(args)
    order = torch.randperm(len(photos))
    n_held = min(300, len(order) // 4)  # 32 of the experiments' 128 tiles, 300 of the multi-scale ones
    train, held = order[:-n_held], order[-n_held:]
    print(f"{len(train)} training and {len(held)} held-out tiles of {', '.join(data.train_photos)}")

    net = PatchDiscriminator(3, args.width, args.n_layers, norm=args.norm)
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


if __name__ == "__main__":
    main()

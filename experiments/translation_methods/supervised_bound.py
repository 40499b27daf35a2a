"""How far a translator gets on photo2painting when it is *given* the answer: a supervised bound.

Trains the ResNet translator of the photo2painting experiments directly on pairs (each training
tile and the painterly filter's rendering of that same tile, the same random 64 px crop of both)
with an L1 or L2 loss, and scores it every 100 iterations on the held-out photo exactly as
training runs do (:class:`~ganforge.metrics.translation.TargetScores`: PSNR/SSIM against the
filter's rendering, beside the untranslated photo). An unpaired method sees less than this, so
where this bound stays at the identity baseline, so will CycleGAN, CUT and FastCUT.

    python experiments/translation_methods/supervised_bound.py --iters 2000 --loss l2
    python experiments/translation_methods/supervised_bound.py --width 8 --blocks 1 --loss l2
    python experiments/translation_methods/supervised_bound.py data.train_photos=[astronaut,rocket]
    python experiments/translation_methods/supervised_bound.py data.train_photo_sizes=[192,256,320,384,448]
    python experiments/translation_methods/supervised_bound.py --n-downsampling 0   # blocks at full size

Trailing arguments are config overrides of ``experiment=cut_photo2painting`` (its data settings
are used: photos, tile and crop sizes, the filter).
"""

from __future__ import annotations

import argparse
import time

import torch
from photo_tiles import add_common_arguments, training_tiles

from ganforge.data.transforms import resize_batch
from ganforge.metrics.translation import TargetScores
from ganforge.networks.resnet_translator import ResnetTranslator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=500, help="training iterations (batches of --batch)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per batch (the experiments': 8)")
    parser.add_argument("--width", type=int, default=16, help="translator width (the experiments': 16)")
    parser.add_argument("--blocks", type=int, default=6, help="residual blocks (the experiments': 6)")
    parser.add_argument(
        "--n-downsampling",
        type=int,
        default=2,
        help="halvings before the blocks (the experiments': 2; 0 = full size)",
    )
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1")
    add_common_arguments(parser)
    args = parser.parse_args()

    # The data module's own tiles: training photos at every data.train_photo_sizes, B = the same
    # tiles rendered by the filter; held-out tiles resized to img_size as the held-out split does.
    data, photos, paintings = training_tiles(args)
    held_photos = resize_batch(data.photo_tiles(data.held_out_photos), data.img_size)
    held_paintings = resize_batch(data.photo_tiles(data.held_out_photos, data.render), data.img_size)
    print(
        f"{len(photos)} training pairs of {data.load_size} px from {', '.join(data.train_photos)}; "
        f"{len(held_photos)} held-out tiles of {', '.join(data.held_out_photos)}"
    )

    net = ResnetTranslator(
        3, args.width, args.blocks, antialias=True, residual=True, n_downsampling=args.n_downsampling
    )
    opt = torch.optim.Adam(net.parameters(), args.lr, betas=(0.5, 0.999))
    crop, margin = data.img_size, data.load_size - data.img_size + 1
    best, start = None, time.time()
    for it in range(1, args.iters + 1):
        index = torch.randint(0, len(photos), (args.batch,))
        top, left = torch.randint(0, margin, (2,)).tolist()
        x = photos[index, :, top : top + crop, left : left + crop]
        y = paintings[index, :, top : top + crop, left : left + crop]
        error = net(x) - y
        loss = error.abs().mean() if args.loss == "l1" else error.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 100 == 0 or it == args.iters:
            net.eval()
            with torch.no_grad():
                scores = TargetScores()
                scores.update(net(held_photos), held_photos, held_paintings)
                s = {k: v.item() for k, v in scores.compute().items()}
            net.train()
            if best is None or s["val/ssim"] > best[2]:
                best = (it, s["val/psnr"], s["val/ssim"])
            print(
                f"{it:5d}  train {args.loss} {loss.item():.4f}  held-out PSNR {s['val/psnr']:.2f} dB "
                f"SSIM {s['val/ssim']:.3f}  (identity {s['val/psnr_identity']:.2f} / "
                f"{s['val/ssim_identity']:.3f})  {time.time() - start:.0f} s",
                flush=True,
            )
    print(
        f"final PSNR {s['val/psnr']:.2f} SSIM {s['val/ssim']:.3f}; highest SSIM {best[2]:.3f} "
        f"(PSNR {best[1]:.2f}) at iteration {best[0]}; identity {s['val/psnr_identity']:.2f} / "
        f"{s['val/ssim_identity']:.3f}"
    )


if __name__ == "__main__":
    main()

"""Translate the whole held-out photo with ganforge-translate and score it against the filter.

Usage: python experiments/cyclegan_photo2painting/full_photo.py <checkpoint> <out folder>

Writes ``coffee.png`` (the photo at the training scale), runs ``ganforge-translate`` on it at
native size, and prints PSNR/SSIM of the translation and of the photo itself against the
painterly rendering; saves ``figure.jpg``: photo | translation | filter output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ganforge.data.embedded_pairs import scaled_photo
from ganforge.data.painterly import painterly
from ganforge.utils.checkpoint import checkpoint_config, load_checkpoint


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def main(ckpt: str, out: str) -> None:
    data = checkpoint_config(load_checkpoint(ckpt))["data"]
    photo = scaled_photo("coffee", int(data["photo_size"]))
    target = painterly(photo, **data["painterly"])
    out_dir = Path(out)
    (out_dir / "in").mkdir(parents=True, exist_ok=True)
    Image.fromarray((photo * 255 + 0.5).astype(np.uint8)).save(out_dir / "in" / "coffee.png")
    subprocess.run(
        [
            "ganforge-translate",
            f"ckpt={ckpt}",
            f"input={out_dir / 'in'}",
            f"out={out_dir / 'out'}",
            "direction=AtoB",
        ],
        check=True,
    )
    translated = np.asarray(Image.open(out_dir / "out" / "coffee.png"), dtype=np.float32) / 255.0
    for name, image in (("translation", translated), ("identity", photo)):
        psnr = peak_signal_noise_ratio(to_tensor(image), to_tensor(target), data_range=1.0)
        ssim = structural_similarity_index_measure(to_tensor(image), to_tensor(target), data_range=1.0)
        print(f"{name}: PSNR {psnr.item():.2f} dB, SSIM {ssim.item():.3f} against the filter output")
    figure = np.concatenate([photo, translated, target], axis=1)
    Image.fromarray((figure * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(
        out_dir / "figure.jpg", quality=85
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])

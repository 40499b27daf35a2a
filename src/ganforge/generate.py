"""``ganforge-generate``: samples from a checkpoint alone (no ``conf/`` tree needed).

Usage:
    ganforge-generate ckpt=outputs/dcgan_mnist5k/<run>/checkpoints/last.ckpt n=64 out=samples/
    ganforge-generate ckpt=... n=100 label=3 seed=1      # one class of a conditional model
    ganforge-generate ckpt=... truncation_psi=0.7        # truncation toward the average w (StyleGAN2)

Writes ``out/00000.png ...`` (one file per image), ``out/grid.png`` and the raw samples as
``out/samples.npy`` (float32 in [-1, 1]; points ``(n, 2)`` for 2-D data, with a scatter
plot as ``grid.png``). The same seed gives the same samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ganforge.utils.checkpoint import CheckpointError, load_generator
from ganforge.utils.cli import parse_key_values, print_error
from ganforge.utils.images import image_grid, save_png, save_scatter, to_uint8
from ganforge.validation import check_truncation

USAGE = (
    "usage: ganforge-generate ckpt=<path> [n=64] [out=generated] [seed=0] [label=<class>] [ema=true] "
    "[batch_size=256] [truncation_psi=1.0]"
)
DEFAULTS = {
    "ckpt": None,
    "n": 64,
    "out": "generated",
    "seed": 0,
    "label": None,
    "ema": True,
    "batch_size": 256,
    "truncation_psi": 1.0,
}


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments over :data:`DEFAULTS`; unknown keys raise with the valid ones."""
    args = parse_key_values(argv, DEFAULTS)
    if not args["ckpt"]:
        raise ValueError("ckpt=<path> is required")
    if int(args["n"]) < 1:
        raise ValueError(f"n must be >= 1; got {args['n']}")
    return args


@torch.no_grad()
def generate(
    ckpt: str | Path,
    n: int,
    seed: int = 0,
    label: int | None = None,
    ema: bool = True,
    batch_size: int = 256,
    truncation_psi: float = 1.0,
) -> tuple[torch.Tensor, dict]:
    """Draw ``n`` samples from a checkpoint's generator; returns ``(samples, run_config)``.
    ``truncation_psi < 1`` pulls ``w`` toward its average (generators with a mapping network)."""
    net, config = load_generator(ckpt, ema=ema)
    kwargs = {}
    if float(truncation_psi) != 1:
        check_truncation(net, float(truncation_psi))
        kwargs["truncation_psi"] = float(truncation_psi)
    model_cfg = config["model"]
    num_classes = int(model_cfg.get("num_classes") or 0)
    if label is not None and num_classes == 0:
        raise ValueError(f"label={label} given but the model in {ckpt} is unconditional")
    if label is not None and not 0 <= int(label) < num_classes:
        raise ValueError(f"label={label} is outside the model's classes 0..{num_classes - 1}")
    rng = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, int(model_cfg["latent_dim"]), generator=rng)
    if num_classes:
        labels = (
            torch.full((n,), int(label))
            if label is not None
            else torch.randint(0, num_classes, (n,), generator=rng)
        )
    else:
        labels = None
    chunks = []
    for start in range(0, n, batch_size):
        part = labels[start : start + batch_size] if labels is not None else None
        chunks.append(net(z[start : start + batch_size], part, **kwargs).float())
    return torch.cat(chunks), config


def write_samples(samples: torch.Tensor, out: str | Path) -> Path:
    """Write PNGs (or a scatter plot for points), a grid and ``samples.npy`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", samples.cpu().numpy().astype(np.float32))
    if samples.dim() == 2:
        save_scatter(samples, out / "grid.png")
        return out
    for i, image in enumerate(to_uint8(samples)):
        save_png(image, out / f"{i:05d}.png")
    save_png(image_grid(samples), out / "grid.png")
    return out


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        samples, _ = generate(
            args["ckpt"],
            int(args["n"]),
            int(args["seed"]),
            args["label"],
            bool(args["ema"]),
            int(args["batch_size"]),
            float(args["truncation_psi"]),
        )
    except (ValueError, CheckpointError) as err:
        print_error("ganforge-generate", err, USAGE)
        sys.exit(2)
    out = write_samples(samples, args["out"])
    print(f"wrote {samples.shape[0]} samples to {out}")


if __name__ == "__main__":
    main()

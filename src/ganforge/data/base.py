"""The data contract every ganforge DataModule follows.

A batch is ``(images, labels)``: images float ``(N, C, H, W)`` in [-1, 1] and labels
``int64 (N,)`` (all zeros for unlabeled data, where ``num_classes == 0``), as the training step
sees it: a module may load uint8 batches and convert them once in ``on_after_batch_transfer``
(the streaming data do, after the move to the device). Subclasses only
say how to build the train and validation datasets; loaders, splits and the in-memory
option live here once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset

from ganforge.config import check_value
from ganforge.utils.colour import rgb_to_grey
from ganforge.utils.seeding import (
    batch_seed,
    process_count,
    process_rank,
    rng_states_by_rank,
    run_seed,
    seed_all,
    set_rng_state,
)

log = logging.getLogger(__name__)


def to_unit_range(images: torch.Tensor, max_value: float) -> torch.Tensor:
    """Scale ``[0, max_value]`` pixels to [-1, 1] as float32."""
    return images.float().div(max_value / 2.0).sub(1.0)


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
) -> ResumableLoader:
    """A DataLoader whose training order depends only on (run seed, epoch): see :class:`EpochShuffleSampler`.

    It is a :class:`ResumableLoader`: checkpoints record its place in the epoch. ``drop_last``
    applies only when the dataset holds at least one full batch.
    """
    batched = BatchGather.wraps(dataset)
    if batched:
        dataset = BatchGather(dataset)
    elif num_workers > 0:
        dataset = SeededBatches(dataset)
    return ResumableLoader(
        dataset,
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


class ResumableLoader(DataLoader):
    """A training DataLoader that Lightning saves in checkpoints and resumes mid-epoch.

    Lightning stores ``state_dict()`` of every stateful training loader in the checkpoint and
    hands it back through ``load_state_dict`` before the resumed run draws its first batch;
    it does not skip batches itself. This loader records the epoch and the number of batches
    it has yielded (the batches the training step got: Lightning's fetcher reads no batch ahead
    of a loader with a length, and worker prefetching happens below the count), and on resume
    continues that epoch at the next unseen batch, in the same order. The skipped batches'
    indices are never handed to the dataset or its workers.

    The state also holds every process's random states at the save, restored right before the
    resumed run's first batch is drawn, so noise, augmentation and random crops drawn in the
    main process continue where they stopped; in workers, items are seeded per batch
    (:class:`SeededBatches`). A state saved at the end of epoch ``e`` is ignored when epoch
    ``e + 1`` starts. The constructor is ``DataLoader``'s, so Lightning can rebuild it (e.g.
    with a distributed sampler).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._epoch: int | None = None  # the epoch being (or last) iterated
        self._yielded = 0  # batches of that epoch handed out
        self._resume: dict[str, Any] | None = None

    @property
    def _index_sampler(self) -> _ResumableBatches:
        # Both of torch's DataLoader iterators draw batch indices from here; the persistent-worker
        # iterator keeps the object it got first, so it is always the same one.
        if "_batches" not in self.__dict__:
            self.__dict__["_batches"] = _ResumableBatches(super()._index_sampler)
        return self.__dict__["_batches"]

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing runs until the first batch is asked for, after Lightning has set
        # the epoch (workers would otherwise draw indices of the wrong epoch at once).
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[Any]:
        epoch = getattr(self.sampler, "epoch", 0)
        resume, self._resume = self._resume, None
        start = 0
        if resume is not None and resume.get("epoch") == epoch:
            start = resume["batches"] * resume.get("batch_size", self.batch_size) // self.batch_size
        self._epoch, self._yielded = epoch, start
        batches = self._index_sampler
        batches.start(epoch, start, seeded=self.num_workers > 0)
        iterator = super().__iter__()
        states = (resume or {}).get("rng") or []
        if start and len(states) == process_count():
            set_rng_state(states[process_rank()])  # after the iterator's own draw, before any item's
        for batch in iterator:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """The epoch, the batches of it handed out, the batch size, and every process's random states."""
        return {
            "epoch": self._epoch,
            "batches": self._yielded,
            "batch_size": self.batch_size,
            "rng": rng_states_by_rank(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch at its next unseen batch when that epoch is the next one run."""
        self._resume = dict(state)
        if state.get("batch_size") not in (None, self.batch_size):
            log.warning(
                "resuming with batch size %s (the checkpoint's loader used %s): the epoch continues "
                "after the samples already seen, rounded down to whole batches",
                self.batch_size,
                state["batch_size"],
            )


class _ResumableBatches:
    """The loader's batches of indices, from batch ``start`` of an epoch on (see :meth:`start`)."""

    def __init__(self, batches: Iterable[list[int]]):
        self.batches = batches
        self.epoch, self.skip, self.seeded = 0, 0, False

    def start(self, epoch: int, skip: int, seeded: bool) -> None:
        """Make the next pass begin at batch ``skip`` of ``epoch``; ``seeded`` tags each batch
        with its :func:`batch_seed` (for workers)."""
        self.epoch, self.skip, self.seeded = epoch, skip, seeded

    def __len__(self) -> int:
        return len(self.batches)  # the whole epoch: Lightning counts the resumed batches itself

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        rank = process_rank()
        for number, indices in enumerate(itertools.islice(iter(self.batches), skip, None), start=skip):
            yield _SeededIndices(indices, batch_seed(self.epoch, number, rank)) if self.seeded else indices


class _SeededIndices(list):
    """A batch of indices carrying the seed its items are loaded with (it survives pickling to a worker)."""

    def __init__(self, indices: Iterable[int], seed: int):
        super().__init__(indices)
        self.seed = seed


class SeededBatches(Dataset):
    """A dataset whose items are loaded, a batch at a time, right after seeding from the batch's place.

    Used in DataLoader workers: random crops and flips then depend only on (run seed, epoch,
    batch, rank), not on which worker loads a batch or on what it loaded before, so a resumed
    run (whose workers start afresh) loads what an uninterrupted run loads.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        seed = getattr(indices, "seed", None)
        if seed is not None:
            seed_all(seed)
        getitems = getattr(self.dataset, "__getitems__", None)
        return getitems(list(indices)) if getitems else [self.dataset[i] for i in indices]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


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

    def metric_reals(self, split: str = "val", labels: bool = False):
        """Real images of ``split`` (``train`` or ``val``) as float batches in [-1, 1], in a fixed order;
        with ``labels``, ``(images, class labels)`` pairs (intra-class FID)."""
        self.setup("fit")
        dataset = {"train": self.train_set, "val": self.val_set}.get(split)
        if not dataset:
            raise ValueError(
                f"data '{self.name}' has no '{split}' images for metrics; set metrics.real_split"
            )
        for images, targets in DataLoader(dataset, batch_size=max(self.batch_size, 256), shuffle=False):
            yield (images, targets) if labels else images

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_set:
            return []
        return self._loader(self.val_set, shuffle=False, drop_last=False)

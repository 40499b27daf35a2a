"""A user's own folder of images (``data=image_folder data.root=...``).

Files are found recursively by extension; other files are ignored. With
``class_subfolders=true`` each first-level subfolder is a class, for conditional models.
Nothing is decoded before training: the folder's index (:mod:`ganforge.data.index`: listing,
headers, labels) is built once per node in ``prepare_data`` and read from its cache by every
rank in ``setup``. A file that is not an image is reported from its header; one whose pixels
are corrupt is reported when training reads it. Either stops the run naming the file, or with
``skip_corrupt=true`` is skipped with a warning (a corrupt file met in training is replaced by
the next readable one, so batches stay full).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ganforge.data.base import GANDataModule
from ganforge.data.index import FolderIndex, folder_index
from ganforge.data.transforms import ImageLoadError, image_transform, load_image

SKIP_HINT = "(set data.skip_corrupt=true to skip such files)"


def readable_files(index: FolderIndex, skip_corrupt: bool) -> list[Path]:
    """The index's files, less those whose header could not be read: the first of them raises
    naming it, or with ``skip_corrupt`` each is dropped with a warning."""
    for name, why in index.errors.items():
        err = ImageLoadError(f"cannot read image {index.root / name}: {why}")
        if not skip_corrupt:
            raise ImageLoadError(f"{err} {SKIP_HINT}")
        warnings.warn(f"skipping {err}", stacklevel=2)
    files = [index.root / name for name in index.names if name not in index.errors]
    if not files:
        raise ValueError("every image file was unreadable")
    return files


def decode_all(files: list[Path], channels: int) -> None:
    """Decode every file once, raising :class:`ImageLoadError` at the first unreadable one: the
    up-front check the folders once ran in ``setup``, kept for benchmarks and one-off checks."""
    for path in files:
        load_image(path, channels)


class LazyFiles:
    """Files decoded one at a time when read.

    A file that fails to decode raises :class:`ImageLoadError` naming it; with ``skip_corrupt``
    it is skipped with one warning per process and the next readable file (in index order,
    wrapping around) is returned instead, so a batch stays full and a run stays reproducible.

    Args:
        files: the files.
        decode: turns one path into an item; raises :class:`ImageLoadError` for a bad file.
        skip_corrupt: substitute for unreadable files instead of raising.
    """

    def __init__(self, files: list[Path], decode: Callable[[Path], Any], skip_corrupt: bool = False):
        self.files, self.decode, self.skip_corrupt = files, decode, skip_corrupt
        self.corrupt: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> tuple[int, Any]:
        """``(j, item)``: the decoded file ``j``, which is ``i`` unless ``i`` was skipped."""
        for step in range(len(self.files)):
            j = (i + step) % len(self.files)
            if j in self.corrupt:
                continue
            try:
                return j, self.decode(self.files[j])
            except ImageLoadError as err:
                if not self.skip_corrupt:
                    raise ImageLoadError(f"{err} {SKIP_HINT}") from err
                self.corrupt.add(j)
                warnings.warn(f"skipping {err}", stacklevel=2)
        raise ValueError("every image file was unreadable")


class ImageFolderDataset(Dataset):
    """Images below a folder, resized and cropped to ``img_size``, scaled to [-1, 1]."""

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        img_size: int,
        channels: int,
        crop: str = "center",
        skip_corrupt: bool = False,
    ):
        self.files, self.labels, self.channels = files, labels, channels
        self.images = LazyFiles(files, partial(load_image, channels=channels), skip_corrupt)
        self.transform = image_transform(img_size, crop)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        used, image = self.images.load(index)
        return self.transform(image), self.labels[used]


class IndexedFolders:
    """What the folder data modules share: an index per folder, built in ``prepare_data`` (once
    per node) and read from its cache in ``setup`` (every rank), and the corrupt-file policy.

    Subclasses set ``skip_corrupt``, ``index_cache`` and ``read_headers`` and list their folders.
    """

    skip_corrupt: bool = False
    index_cache: str | None = None  # folder of cached indexes; None indexes without caching
    read_headers: bool = True  # read every header when indexing: non-images found before training

    def folders(self) -> list[Path]:
        """The image folders this data reads."""
        raise NotImplementedError

    def folder_index(self, folder: Path) -> FolderIndex:
        """``folder``'s index, from the cache when its listing is unchanged."""
        return folder_index(folder, self.index_cache, self.read_headers)

    def folder_files(self, folder: Path) -> list[Path]:
        """``folder``'s files less those whose header is unreadable (see :func:`readable_files`)."""
        return readable_files(self.folder_index(folder), self.skip_corrupt)

    def prepare_data(self) -> None:
        """Build and cache every folder's index (Lightning calls this once per node)."""
        if getattr(self, "train_set", None) is None:
            for folder in self.folders():
                self.folder_index(folder)


class ImageFolderDataModule(IndexedFolders, GANDataModule):
    """Any folder tree of images.

    Args:
        root: the folder to search recursively.
        class_subfolders: label each image by its first-level subfolder.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        index_cache: folder of cached folder indexes (:mod:`ganforge.data.index`); ``None``
            indexes without caching.
        read_headers: read every file's header when indexing (finds non-images before training).
        **kwargs: see :class:`GANDataModule`.
    """

    name = "image_folder"

    def __init__(
        self,
        root: str,
        class_subfolders: bool = False,
        skip_corrupt: bool = False,
        index_cache: str | None = None,
        read_headers: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root, self.class_subfolders = Path(root).expanduser(), class_subfolders
        self.skip_corrupt, self.index_cache, self.read_headers = skip_corrupt, index_cache, read_headers
        self.classes: list[str] = []
        self.index: FolderIndex | None = None

    def folders(self) -> list[Path]:
        return [self.root]

    @property
    def dataset_id(self) -> str:
        """The base id plus a digest of the files' names, sizes and times (:mod:`ganforge.data.digest`),
        so replaced or added images give new real statistics instead of a stale cache entry."""
        index = self.index or folder_index(self.root, read_headers=False)
        return f"{super().dataset_id}|files={index.digest}"

    def build_dataset(self) -> ImageFolderDataset:
        self.index = self.folder_index(self.root)
        files = readable_files(self.index, self.skip_corrupt)
        labels = [0] * len(files)
        if self.class_subfolders:
            self.classes, all_labels = self.index.class_labels()
            by_file = dict(zip(self.index.files, all_labels, strict=True))
            labels = [by_file[f] for f in files]
            self.num_classes = len(self.classes)
        return ImageFolderDataset(files, labels, self.img_size, self.channels, skip_corrupt=self.skip_corrupt)

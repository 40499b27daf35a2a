"""A user's own folder of images (``data=image_folder data.root=...``).

Files are found recursively by extension; other files are ignored. With
``class_subfolders=true`` each first-level subfolder is a class, for conditional models.
Every image is checked when the dataset is built, so a corrupt file is reported before
training starts (or skipped with a warning when ``skip_corrupt=true``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganforge.data.base import GANDataModule
from ganforge.data.digest import folder_digest
from ganforge.data.transforms import IMAGE_EXTENSIONS, ImageLoadError, image_transform, load_image


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root``, sorted, by extension (case-insensitive).

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` holds no image files.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder does not exist: {root}; give the path of a folder that holds the images"
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return files


def check_images(files: list[Path], channels: int, skip_corrupt: bool) -> list[Path]:
    """Decode every file once; drop unreadable ones with a warning or raise naming the first."""
    good = []
    for path in files:
        try:
            load_image(path, channels)
        except ImageLoadError as err:
            if not skip_corrupt:
                raise ImageLoadError(f"{err} (set data.skip_corrupt=true to skip such files)") from err
            warnings.warn(f"skipping {err}", stacklevel=2)
            continue
        good.append(path)
    if not good:
        raise ValueError("every image file was unreadable")
    return good


class ImageFolderDataset(Dataset):
    """Images below a folder, resized and cropped to ``img_size``, scaled to [-1, 1]."""

    def __init__(
        self, files: list[Path], labels: list[int], img_size: int, channels: int, crop: str = "center"
    ):
        self.files, self.labels, self.channels = files, labels, channels
        self.transform = image_transform(img_size, crop)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.files[index], self.channels)), self.labels[index]


class ImageFolderDataModule(GANDataModule):
    """Any folder tree of images.

    Args:
        root: the folder to search recursively.
        class_subfolders: label each image by its first-level subfolder.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        **kwargs: see :class:`GANDataModule`.
    """

    name = "image_folder"

    def __init__(self, root: str, class_subfolders: bool = False, skip_corrupt: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.class_subfolders, self.skip_corrupt = (
            Path(root).expanduser(),
            class_subfolders,
            skip_corrupt,
        )
        self.classes: list[str] = []

    @property
    def dataset_id(self) -> str:
        """The base id plus a digest of the files' names, sizes and times (:mod:`ganforge.data.digest`),
        so replaced or added images give new real statistics instead of a stale cache entry."""
        return f"{super().dataset_id}|files={folder_digest(self.root, find_images(self.root))}"

    def build_dataset(self) -> ImageFolderDataset:
        files = check_images(find_images(self.root), self.channels, self.skip_corrupt)
        labels = [0] * len(files)
        if self.class_subfolders:
            subdirs = [f.relative_to(self.root).parts for f in files]
            loose = [f for f, parts in zip(files, subdirs, strict=True) if len(parts) < 2]
            if loose:
                raise ValueError(
                    f"class_subfolders=true but {loose[0]} is not inside a class subfolder of {self.root}"
                )
            self.classes = sorted({parts[0] for parts in subdirs})
            labels = [self.classes.index(parts[0]) for parts in subdirs]
            self.num_classes = len(self.classes)
        return ImageFolderDataset(files, labels, self.img_size, self.channels)

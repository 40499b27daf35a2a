"""Unpaired image folders in CycleGAN's layout (``data=unaligned data.root=...``).

``root/trainA``, ``root/trainB`` hold the two domains' training images and ``root/testA``,
``root/testB`` the held-out ones, as in CycleGAN's datasets (horse2zebra, monet2photo...).
The domains may hold different numbers of images of any sizes and modes.
"""

from __future__ import annotations

from pathlib import Path

from ganforge.config import ConfigError
from ganforge.data.folders import check_images, find_images
from ganforge.data.transforms import load_image
from ganforge.data.translation import Item, TranslationDataModule, UnpairedDataset


def image_to_tensor(path: Path, channels: int):
    """Decode one image file to ``(C, H, W)`` float in [-1, 1] (any mode, any size)."""
    import numpy as np
    import torch

    arr = np.asarray(load_image(path, channels), dtype=np.float32)
    tensor = torch.from_numpy(arr).view(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
    return tensor / 127.5 - 1.0


class FileSource:
    """Image files decoded on access."""

    def __init__(self, files: list[Path], channels: int):
        self.files, self.channels = files, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Item:
        return image_to_tensor(self.files[i], self.channels), -1


class UnalignedFolderDataModule(TranslationDataModule):
    """Two folders of unrelated images per split.

    Args:
        root: folder holding ``trainA/ trainB/ testA/ testB/``.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "unaligned"

    def __init__(self, root: str, skip_corrupt: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root, self.skip_corrupt = Path(root).expanduser(), skip_corrupt

    def settings_id(self) -> str:
        return f"-{self.root.resolve()}"

    def _source(self, sub: str) -> FileSource:
        folder = self.root / sub
        if not folder.is_dir():
            hint = (
                " (it looks like an aligned A|B layout: use data=aligned)"
                if (self.root / "train").is_dir()
                else ""
            )
            raise ConfigError(
                f"data.root={self.root} has no '{sub}' folder; unaligned data needs "
                f"trainA/ trainB/ testA/ testB/{hint}"
            )
        return FileSource(check_images(find_images(folder), self.channels, self.skip_corrupt), self.channels)

    def build_sets(self) -> tuple[UnpairedDataset, UnpairedDataset]:
        args = (self.load_size, self.img_size)
        train = UnpairedDataset(self._source("trainA"), self._source("trainB"), *args, self.flip, True)
        held_out = UnpairedDataset(self._source("testA"), self._source("testB"), *args, False, False)
        return train, held_out

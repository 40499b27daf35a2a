"""Unpaired image folders in CycleGAN's layout (``data=unaligned data.root=...``).

``root/trainA``, ``root/trainB`` hold the two domains' training images and ``root/testA``,
``root/testB`` the held-out ones, as in CycleGAN's datasets (horse2zebra, monet2photo...).
The domains may hold different numbers of images of any sizes and modes. Files are decoded
when read; each folder's index is built once per node (:class:`ganforge.data.folders.IndexedFolders`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ganforge.config import ConfigError
from ganforge.data.folders import IndexedFolders, LazyFiles
from ganforge.data.transforms import image_to_tensor
from ganforge.data.translation import Item, TranslationDataModule, UnpairedDataset


class FileSource(LazyFiles):
    """Image files decoded on access (a corrupt one is named, or skipped with ``skip_corrupt``)."""

    def __init__(self, files: list[Path], channels: int, skip_corrupt: bool = False):
        super().__init__(files, partial(image_to_tensor, channels=channels), skip_corrupt)
        self.channels = channels

    def __getitem__(self, i: int) -> Item:
        return self.load(i)[1], -1


SUBFOLDERS = ("trainA", "trainB", "testA", "testB")


class UnalignedFolderDataModule(IndexedFolders, TranslationDataModule):
    """Two folders of unrelated images per split.

    Args:
        root: folder holding ``trainA/ trainB/ testA/ testB/``.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        index_cache: folder of cached folder indexes; ``None`` indexes without caching.
        read_headers: read every file's header when indexing (finds non-images before training).
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "unaligned"

    def __init__(
        self,
        root: str,
        skip_corrupt: bool = False,
        index_cache: str | None = None,
        read_headers: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.skip_corrupt, self.index_cache, self.read_headers = skip_corrupt, index_cache, read_headers

    def settings_id(self) -> str:
        return f"-{self.root.resolve()}"

    def folders(self) -> list[Path]:
        return [self._folder(sub) for sub in SUBFOLDERS]

    def _folder(self, sub: str) -> Path:
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
        return folder

    def _source(self, sub: str) -> FileSource:
        return FileSource(self.folder_files(self._folder(sub)), self.channels, self.skip_corrupt)

    def build_sets(self) -> tuple[UnpairedDataset, UnpairedDataset]:
        args = (self.load_size, self.img_size)
        train = UnpairedDataset(self._source("trainA"), self._source("trainB"), *args, self.flip, True)
        held_out = UnpairedDataset(self._source("testA"), self._source("testB"), *args, False, False)
        return train, held_out

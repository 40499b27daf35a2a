"""Paired images side by side, pix2pix's layout (``data=aligned data.root=...``).

Each file of ``root/train`` (and ``root/val`` or ``root/test`` for held-out pairs) holds A
in its left half and B in its right half, as in pix2pix's datasets (facades,
edges2shoes...). Files may differ in size; both halves are resized, cropped and flipped
alike. ``direction=BtoA`` swaps the halves. Files are decoded when read; each folder's index
is built once per node (:class:`ganforge.data.folders.IndexedFolders`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from ganforge.config import ConfigError
from ganforge.data.folders import IndexedFolders, LazyFiles
from ganforge.data.transforms import ImageLoadError, image_to_tensor
from ganforge.data.translation import PairedDataset, TranslationDataModule

DIRECTIONS = ("AtoB", "BtoA")


def pair_halves(path: Path, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an ``A|B`` file into its left and right halves (an odd last column is dropped).

    Raises:
        ImageLoadError: the file cannot be decoded, or is too narrow to hold two halves.
    """
    image = image_to_tensor(path, channels)
    width = image.shape[-1]
    if width < 2:
        raise ImageLoadError(f"{path} is {width} px wide; an A|B pair needs two halves")
    return image[..., : width // 2], image[..., width // 2 : 2 * (width // 2)]


class AlignedFilePairs(LazyFiles):
    """``A|B`` image files, split into their halves on access."""

    def __init__(self, files: list[Path], channels: int, direction: str = "AtoB", skip_corrupt: bool = False):
        super().__init__(files, partial(pair_halves, channels=channels), skip_corrupt)
        self.channels, self.swap = channels, direction == "BtoA"

    def __getitem__(self, i: int):
        a, b = self.load(i)[1]
        return (b, a, -1) if self.swap else (a, b, -1)


class AlignedFolderDataModule(IndexedFolders, TranslationDataModule):
    """Side-by-side ``A|B`` pairs.

    Args:
        root: folder holding ``train/`` and ``val/`` (or ``test/``).
        direction: ``AtoB`` translates the left half into the right one, ``BtoA`` the reverse.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        index_cache: folder of cached folder indexes; ``None`` indexes without caching.
        read_headers: read every file's header when indexing (finds non-images before training).
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "aligned"
    paired = True

    def __init__(
        self,
        root: str,
        direction: str = "AtoB",
        skip_corrupt: bool = False,
        index_cache: str | None = None,
        read_headers: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ConfigError(f"data.direction must be AtoB or BtoA; got {direction!r}")
        self.root, self.direction = Path(root).expanduser(), direction
        self.skip_corrupt, self.index_cache, self.read_headers = skip_corrupt, index_cache, read_headers

    def settings_id(self) -> str:
        return f"-{self.root.resolve()}-{self.direction}"

    def folders(self) -> list[Path]:
        return [self._folder("train"), self._folder("val", "test")]

    def _pairs(self, *subs: str) -> AlignedFilePairs:
        return AlignedFilePairs(
            self.folder_files(self._folder(*subs)), self.channels, self.direction, self.skip_corrupt
        )

    def _folder(self, *subs: str) -> Path:
        for sub in subs:
            if (self.root / sub).is_dir():
                return self.root / sub
        if (self.root / "trainA").is_dir():
            raise ConfigError(
                f"data.root={self.root} holds unpaired folders (trainA/ trainB/) but paired A|B images are "
                "required; use data=unaligned with model=cyclegan"
            )
        raise ConfigError(f"data.root={self.root} has no {' or '.join(subs)} folder of A|B images")

    def build_sets(self) -> tuple[PairedDataset, PairedDataset]:
        args = (self.load_size, self.img_size)
        train = PairedDataset(self._pairs("train"), *args, self.flip, True)
        held_out = PairedDataset(self._pairs("val", "test"), *args, False, False)
        return train, held_out

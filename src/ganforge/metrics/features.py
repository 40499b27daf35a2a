"""Feature extractors for FID, KID, IS and precision/recall, each named by its weights' hash.

Every extractor takes uint8 images ``(N, C, H, W)`` in [0, 255], as the reference pipelines do
(torch-fidelity, StyleGAN2-ADA's ``metric_utils``): generated images are quantized with rounding
before they reach it (:func:`ganforge.utils.images.to_uint8`). It returns float64 embeddings and
class logits in one pass, so FID, KID, IS and precision/recall share one forward per image.

* ``domain``: the offline digit classifier (:mod:`ganforge.metrics.domain`), 128-d pooled
  features and 10 class logits, images resized to 28 px with antialiased bilinear. Colour
  images become grey on uint8 by :func:`ganforge.utils.colour.rgb_to_grey`, the function data
  loading uses, so a colour folder scored by ``ganforge-eval`` and the same files loaded with
  ``channels: 1`` for training give the same features.
* ``inception``: the InceptionV3 of the TensorFlow FID code (Heusel et al. 2017) in torch-fidelity's
  port, 2048-d pool features and 1008 unbiased logits, TF1-compatible bilinear resize to 299 px.
  Its weights file is never downloaded here: it is read from the torch hub cache or a given path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ganforge.utils.colour import rgb_to_grey

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
EXTRACTORS = ("domain", "inception")


class InceptionWeightsMissing(FileNotFoundError):
    """The FID InceptionV3 weights are not on disk; the message says which file and where."""


class FeatureExtractor(nn.Module):
    """Base of the extractors: uint8 images in, ``(features, logits)`` in float64 out.

    Attributes:
        name: extractor name recorded in the metric protocol.
        weights_sha256: SHA-256 of the weights, recorded in the protocol.
        resize: how images are brought to the network's input size (recorded in the protocol).
        num_features: embedding size (torchmetrics reads it instead of probing the network).
    """

    name = "base"
    resize = "none"
    weights_sha256 = ""
    num_features = 0

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings only: the ``feature`` module interface torchmetrics' FID and KID call."""
        return self.extract(images)[0]

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # BatchNorm statistics must never change


def _check_uint8(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(
            f"extractors take uint8 (N, C, H, W) images; got {images.dtype} {tuple(images.shape)}"
        )


class DomainFeatures(FeatureExtractor):
    """The digit classifier as a metric extractor (features of its pooled layer, its logits).

    Args:
        weights_path: classifier weights; ``None`` uses the weights shipped with ganforge.
    """

    name = "domain"

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        from ganforge.metrics.domain import load_digit_classifier

        self.net = load_digit_classifier(weights_path)
        self.weights_sha256 = self.net.weights_sha256
        self.num_features = self.net.num_features
        self.resize = f"antialias-bilinear-{self.net.input_size}"

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(images)
        if images.shape[1] == 3:  # grey on uint8, rounded as a colour file decoded to grey is
            images = rgb_to_grey(images)
        x = images.float().div(127.5).sub(1.0)  # back to the [-1, 1] range the classifier was trained on
        features = self.net.features(x)
        return features.double(), self.net.head(features).double()


def inception_weights_file(weights_path: str | Path | None = None) -> Path:
    """Where the FID Inception weights are: ``weights_path`` or the torch hub cache.

    Raises:
        InceptionWeightsMissing: the file is absent; nothing is downloaded.
    """
    if weights_path:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        raise InceptionWeightsMissing(
            f"metrics.weights_path={path} does not exist; it must be the FID InceptionV3 weights {INCEPTION_FILE}"
        )
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / INCEPTION_FILE
    if path.is_file():
        return path
    raise InceptionWeightsMissing(
        f"the FID InceptionV3 weights {INCEPTION_FILE} are not in {folder}. Offline, copy the file "
        f"there (or pass metrics.weights_path=<file>); online, download it once with "
        f"`mkdir -p {folder} && curl -L -o {path} {INCEPTION_URL}`. "
        "For digit data, metrics=domain needs no download."
    )


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionFeatures(FeatureExtractor):
    """torch-fidelity's FID InceptionV3: 2048-d pool features and unbiased logits for IS.

    Args:
        weights_path: the weights file; ``None`` looks in ``torch.hub.get_dir()/checkpoints``.
    """

    name = "inception"
    resize = "tf1-bilinear-299"
    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights_file(weights_path)
        self.weights_sha256 = file_sha256(path)
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(images)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, logits = self.net(images.contiguous())
        return features.double(), logits.double()


def build_extractor(name: str, weights_path: str | Path | None = None) -> FeatureExtractor:
    """The extractor called ``name`` (``domain`` or ``inception``), in eval mode."""
    if name == "domain":
        return DomainFeatures(weights_path).eval()
    if name == "inception":
        return InceptionFeatures(weights_path).eval()
    raise ValueError(f"unknown feature extractor '{name}'; choose one of {', '.join(EXTRACTORS)}")


class PrecomputedFeatures(nn.Module):
    """Identity ``feature`` module: torchmetrics gets features the shared extractor computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features

"""Feature extractors for FID, KID, IS, precision/recall and density/coverage, each named by its weights' hash.

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
* ``dinov2-vit-{s,b,l,g}-14`` (``dinov2`` = ``dinov2-vit-l-14``, the FD_DINOv2 network of Stein et
  al. 2023, "Exposing flaws of generative model evaluation metrics"): torch-fidelity's DINOv2
  extractor (TF1-compatible bilinear resize to 224 px, ImageNet normalisation), CLS embedding,
  no logits. torch-fidelity builds it by ``torch.hub.load("facebookresearch/dinov2", ...)``, which
  downloads; here the network is built from that repository's code in the torch hub cache and its
  ``dinov2_vit?14_pretrain.pth`` weights read from disk.
* ``clip-*`` (``clip`` = ``clip-vit-b-32``): torch-fidelity's CLIP image encoder (its vendored
  architecture, TF1-compatible resize to the model's resolution, CLIP normalisation), no logits,
  from OpenAI's TorchScript file under torch-fidelity's cache name.

Missing weights raise :class:`WeightsMissing` when the extractor is built, i.e. before training,
naming the file to provide and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from ganforge.utils.colour import rgb_to_grey

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
# torch-fidelity 0.4's names; the hub entry points of facebookresearch/dinov2 per model
DINOV2_MODELS = {f"dinov2-vit-{s}-14": f"dinov2_vit{s}14" for s in "sblg"}
DINOV2_REPO_FOLDER = "facebookresearch_dinov2_main"  # where torch.hub.load caches the repository
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2"
CLIP_MODELS = (
    "clip-rn50", "clip-rn101", "clip-rn50x4", "clip-rn50x16", "clip-rn50x64",
    "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", "clip-vit-l-14-336px",
)  # fmt: skip
ALIASES = {"dinov2": "dinov2-vit-l-14", "clip": "clip-vit-b-32"}
EXTRACTORS = ("domain", "inception", *ALIASES, *DINOV2_MODELS, *CLIP_MODELS)


class WeightsMissing(FileNotFoundError):
    """An extractor's weights (or code) are not on disk; the message says which file and where."""


class InceptionWeightsMissing(WeightsMissing):
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
    has_logits = True  # class logits for IS; DINOv2 and CLIP give embeddings only

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


def _rgb(images: torch.Tensor) -> torch.Tensor:
    """Grey images as three equal channels, as the natural-image networks expect."""
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images.contiguous()


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


def hub_weights_file(
    cache_name: str,
    url: str,
    weights_path: str | Path | None,
    expected: str,
    absent: str,
    error: type[WeightsMissing] = WeightsMissing,
    hint: str = "",
) -> Path:
    """A weights file: ``weights_path`` when given, else ``cache_name`` in ``torch.hub.get_dir()/checkpoints``.

    Args:
        cache_name: the file's name in the hub cache.
        url: where it is downloaded from (named in the message, never fetched).
        weights_path: the user's ``metrics.weights_path``, or ``None``.
        expected: completes "metrics.weights_path=... does not exist; it must be ...".
        absent: the subject of "... are not in <folder>".
        error: the exception to raise.
        hint: appended to the message of a missing cache file.

    Raises:
        ``error``: the file is absent; nothing is downloaded.
    """
    if weights_path:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        raise error(f"metrics.weights_path={path} does not exist; it must be {expected}")
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / cache_name
    if path.is_file():
        return path
    raise error(
        f"{absent} are not in {folder}. Offline, copy the file there (or pass metrics.weights_path=<file>); "
        f"online, download it once with `mkdir -p {folder} && curl -L -o {path} {url}`.{hint}"
    )


def inception_weights_file(weights_path: str | Path | None = None) -> Path:
    """Where the FID Inception weights are: ``weights_path`` or the torch hub cache.

    Raises:
        InceptionWeightsMissing: the file is absent; nothing is downloaded.
    """
    weights = f"the FID InceptionV3 weights {INCEPTION_FILE}"
    return hub_weights_file(
        INCEPTION_FILE,
        INCEPTION_URL,
        weights_path,
        expected=weights,
        absent=weights,
        error=InceptionWeightsMissing,
        hint=" For digit data, metrics=domain needs no download.",
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
        features, logits = self.net(_rgb(images))
        return features.double(), logits.double()


class FidelityEmbedding(FeatureExtractor):
    """A torch-fidelity extractor that gives one embedding per image and no class logits (DINOv2,
    CLIP): ``self.net`` maps uint8 RGB images to ``(features,)``."""

    has_logits = False

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(images)
        (features,) = self.net(_rgb(images))
        return features.double(), features.new_zeros(features.shape[0], 0, dtype=torch.float64)


def dinov2_files(name: str, weights_path: str | Path | None = None) -> tuple[Path, Path]:
    """``(repository folder, weights file)`` of a DINOv2 model: the torch hub cache or ``weights_path``.

    Raises:
        WeightsMissing: either is absent, naming what to put where; nothing is downloaded.
    """
    hub, entry = Path(torch.hub.get_dir()), DINOV2_MODELS[name]
    repo = hub / DINOV2_REPO_FOLDER
    file = f"{entry}_pretrain.pth"
    weights = Path(weights_path).expanduser() if weights_path else hub / "checkpoints" / file
    missing = []
    if not (repo / "hubconf.py").is_file():
        missing.append(
            f"the facebookresearch/dinov2 code is not in {repo} (torch.hub's cache of the repository; "
            f"online: `git clone https://github.com/facebookresearch/dinov2 {repo}`)"
        )
    if not weights.is_file():
        place = (
            f"given as metrics.weights_path={weights} do not exist"
            if weights_path
            else f"are not in {weights.parent} (copy the file there or pass metrics.weights_path=<file>)"
        )
        missing.append(
            f"the {name} weights {file} {place}; online: `curl -L -o {weights} {DINOV2_URL}/{entry}/{file}`"
        )
    if missing:
        raise WeightsMissing(f"FD_DINOv2 needs files that are never downloaded here: {'; '.join(missing)}")
    return repo, weights


class DinoV2Features(FidelityEmbedding):
    """torch-fidelity's DINOv2 extractor around a network built from local files: CLS embeddings.

    torch-fidelity 0.4 builds the network only by ``torch.hub.load("facebookresearch/dinov2", ...)``
    (a download); here the same entry point is called on the cached repository with
    ``pretrained=False`` and the weights file is loaded strictly, then torch-fidelity's
    ``forward`` (resize to 224 px as TF1 does, ImageNet normalisation) embeds the images.

    Args:
        name: a torch-fidelity DINOv2 name, e.g. ``dinov2-vit-l-14``.
        weights_path: the weights file; ``None`` looks in ``torch.hub.get_dir()/checkpoints``.
    """

    def __init__(self, name: str = "dinov2-vit-l-14", weights_path: str | Path | None = None):
        super().__init__()
        import warnings

        from torch_fidelity.feature_extractor_base import FeatureExtractorBase
        from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

        repo, weights = dinov2_files(name, weights_path)
        self.name, self.weights_sha256 = name, file_sha256(weights)
        self.resize = f"tf1-bilinear-{FeatureExtractorDinoV2.INPUT_IMAGE_SIZE}"
        os.environ["XFORMERS_DISABLED"] = "1"  # as torch-fidelity sets it: plain PyTorch attention
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="xFormers is")
            model = torch.hub.load(str(repo), DINOV2_MODELS[name], source="local", pretrained=False)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        self.num_features = int(model.embed_dim)
        self.net = FeatureExtractorDinoV2.__new__(FeatureExtractorDinoV2)
        FeatureExtractorBase.__init__(self.net, name, ["dinov2"])
        self.net.feature_extractor_internal_dtype = torch.float32
        self.net.model = model.float().requires_grad_(False)


def clip_weights_file(name: str, weights_path: str | Path | None = None) -> Path:
    """Where a CLIP model's TorchScript file is: ``weights_path`` or torch-fidelity's hub cache name.

    Raises:
        WeightsMissing: the file is absent; nothing is downloaded.
    """
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

    cache_name = f"{name}-{MODEL_METADATA[name]['hash']}.pt"  # torch-fidelity's cache name
    return hub_weights_file(
        cache_name,
        MODEL_URLS[name],
        weights_path,
        expected=f"OpenAI's {name} file {MODEL_METADATA[name]['filename']}.pt ({MODEL_URLS[name]})",
        absent=f"FD_CLIP: the {name} weights {cache_name}",
    )


class ClipFeatures(FidelityEmbedding):
    """torch-fidelity's CLIP image encoder: the projected image embedding, no logits.

    Args:
        name: a torch-fidelity CLIP name, e.g. ``clip-vit-b-32``.
        weights_path: the TorchScript file; ``None`` looks in ``torch.hub.get_dir()/checkpoints``.
    """

    def __init__(self, name: str = "clip-vit-b-32", weights_path: str | Path | None = None):
        super().__init__()
        import warnings

        from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

        path = clip_weights_file(name, weights_path)
        self.name, self.weights_sha256 = name, file_sha256(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.load's deprecation
            self.net = FeatureExtractorCLIP(name, ["clip"], feature_extractor_weights_path=str(path))
        self.num_features = int(self.net.model.visual.output_dim)
        self.resize = f"tf1-bilinear-{self.net.resolution}"


def extractor_class(name: str) -> type[FeatureExtractor]:
    """The class behind an extractor name (aliases resolved); ``ValueError`` for unknown names."""
    name = ALIASES.get(name, name)
    if name == "domain":
        return DomainFeatures
    if name == "inception":
        return InceptionFeatures
    if name in DINOV2_MODELS:
        return DinoV2Features
    if name in CLIP_MODELS:
        return ClipFeatures
    raise ValueError(f"unknown feature extractor '{name}'; choose one of {', '.join(EXTRACTORS)}")


def build_extractor(name: str, weights_path: str | Path | None = None) -> FeatureExtractor:
    """The extractor called ``name`` (see :data:`EXTRACTORS`; ``dinov2``/``clip`` are aliases), in eval mode."""
    cls, name = extractor_class(name), ALIASES.get(name, name)
    if cls in (DinoV2Features, ClipFeatures):
        return cls(name, weights_path).eval()
    return cls(weights_path).eval()


class PrecomputedFeatures(nn.Module):
    """Identity ``feature`` module: torchmetrics gets features the shared extractor computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features

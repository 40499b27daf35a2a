"""On-disk cache of real-data statistics, keyed by everything they depend on.

As in StyleGAN2-ADA's ``metric_utils``, the features of the real images are computed once per
(dataset, split, number of images, extractor and its weights hash, image size, resize,
quantization) and stored under a hash of that key; later runs and evaluations read them.
Writes go through a temporary file and a rename; an unreadable entry is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("ganforge")


@dataclass
class RealStatistics:
    """Features of the real images and their FID statistics (float64).

    Attributes:
        features: ``(n, d)`` embeddings, kept for KID and precision/recall.
        mean: ``(d,)`` feature mean.
        cov: ``(d, d)`` unbiased feature covariance.
        image_shape: ``(C, H, W)`` of the real images.
        key: the cache key fields.
        labels: ``(n,)`` class labels of the images, when they were asked for (intra-class FID).
    """

    features: torch.Tensor
    mean: torch.Tensor
    cov: torch.Tensor
    image_shape: tuple[int, int, int]
    key: dict[str, Any]
    labels: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    @classmethod
    def from_features(
        cls,
        features: torch.Tensor,
        image_shape: tuple[int, int, int],
        key: dict[str, Any],
        labels: torch.Tensor | None = None,
    ) -> RealStatistics:
        features = features.double()
        return cls(features, features.mean(0), torch.cov(features.T), tuple(image_shape), key, labels)


def cache_key(fields: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the key fields (first 16 hex digits)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StatsCache:
    """A folder of ``real-<key>.pt`` files; ``None`` as folder disables caching.

    Args:
        folder: where the statistics live.
    """

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder).expanduser() if folder else None

    def path(self, fields: dict[str, Any]) -> Path | None:
        return self.folder / f"real-{cache_key(fields)}.pt" if self.folder else None

    def load(self, fields: dict[str, Any]) -> RealStatistics | None:
        """The cached statistics for ``fields``, or ``None`` (missing, unreadable or foreign)."""
        path = self.path(fields)
        if path is None or not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if data["key"] != json.loads(json.dumps(fields, default=str)):
                raise ValueError("stored key differs from the requested one")
            return RealStatistics(
                data["features"],
                data["mean"],
                data["cov"],
                tuple(data["image_shape"]),
                data["key"],
                data.get("labels"),  # absent from files written before intra-class FID
            )
        except Exception as err:  # a truncated or foreign file is recomputed, never fatal
            log.warning("ignoring unreadable metric cache %s (%s); recomputing", path, err)
            return None

    def save(self, stats: RealStatistics) -> Path | None:
        """Store ``stats`` atomically; returns the file (``None`` when caching is off)."""
        path = self.path(stats.key)
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(
            {
                "features": stats.features.cpu(),
                "mean": stats.mean.cpu(),
                "cov": stats.cov.cpu(),
                "image_shape": list(stats.image_shape),
                "key": json.loads(json.dumps(stats.key, default=str)),
                **({"labels": stats.labels.cpu()} if stats.labels is not None else {}),
            },
            buffer,
        )
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(buffer.getbuffer())
        os.replace(tmp, path)
        return path

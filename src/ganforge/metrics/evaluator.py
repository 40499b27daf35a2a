"""One place that turns real and generated images into FID, KID, IS and precision/recall.

The training callback and ``ganforge-eval`` both use :class:`MetricEvaluator`. Images are
quantized to uint8 with rounding, embedded once by the chosen extractor, and handed to the
torchmetrics implementations (Heusel et al. 2017 FID; Bińkowski et al. 2018 KID; Salimans et al.
2016 IS) and to improved precision/recall (Kynkäänniemi et al. 2019). Real features come from the
on-disk cache when they were computed before.

Under DDP each rank embeds its share of the generated images and holds the share
``rank::world_size`` of the real features; ``compute()`` is a collective that every rank calls,
and its all-reduce (FID sums) or all-gather (KID, IS, precision/recall features) restores the
complete sets, so FID equals the single-process value. Every rank holds a non-empty share of each
state, as the gathers of list states require.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities import dim_zero_cat

from ganforge.metrics.cache import RealStatistics, StatsCache
from ganforge.metrics.features import PrecomputedFeatures, build_extractor
from ganforge.metrics.precision_recall import precision_recall
from ganforge.metrics.protocol import QUANTIZATION, protocol_record
from ganforge.utils.images import to_uint8

METRIC_NAMES = ("fid", "kid", "is", "pr")


class PrecisionRecall(Metric):
    """Improved precision/recall as a torchmetrics ``Metric`` (features gathered across ranks)."""

    full_state_update = False

    def __init__(self, k: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.k = k
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return precision_recall(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features), self.k)


def load_fid_statistics(
    fid: FrechetInceptionDistance, mean: torch.Tensor, cov: torch.Tensor, n: int, real: bool = True
) -> None:
    """Set one side of a torchmetrics FID state from a mean, an unbiased covariance and a count.

    The state holds running sums: ``sum = n * mean`` and ``cov_sum = (n - 1) * cov + n * mean meanᵀ``,
    from which ``compute()`` recovers exactly ``mean`` and ``cov``.
    """
    mean, cov = mean.double().to(fid.device), cov.double().to(fid.device)
    side = "real" if real else "fake"
    setattr(fid, f"{side}_features_sum", mean * n)
    setattr(fid, f"{side}_features_cov_sum", cov * (n - 1) + n * torch.outer(mean, mean))
    setattr(fid, f"{side}_features_num_samples", torch.tensor(n, dtype=torch.long, device=fid.device))
    fid.orig_dtype = torch.float64  # compute() casts to the dtype update() last saw


class MetricEvaluator:
    """Computes the chosen metrics of generated images against cached real statistics.

    Args:
        names: metrics to compute, any of ``fid``, ``kid``, ``is``, ``pr``.
        extractor: ``domain`` (offline digit classifier) or ``inception`` (FID InceptionV3).
        weights_path: the extractor's weights file; ``None`` = its default place.
        n_fake: generated images per evaluation.
        n_real: real images (the first of the split); ``None`` = the whole split.
        real_split: ``val`` or ``train``.
        batch_size: images per extractor forward.
        cache_dir: folder of cached real statistics; ``None`` disables the cache.
        kid_subset_size: KID subset size (lowered to the smaller sample count if needed).
        kid_subsets: number of KID subsets.
        is_splits: IS splits.
        pr_k: neighbourhood size of precision/recall.
        seed: seeds the generated samples and the random subsets of KID and IS.
    """

    def __init__(
        self,
        names: Iterable[str] = ("fid", "kid", "is", "pr"),
        extractor: str = "domain",
        weights_path: str | None = None,
        n_fake: int = 2000,
        n_real: int | None = None,
        real_split: str = "val",
        batch_size: int = 250,
        cache_dir: str | None = None,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        is_splits: int = 10,
        pr_k: int = 3,
        seed: int = 0,
    ):
        self.names = [str(n) for n in names]
        unknown = sorted(set(self.names) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRIC_NAMES)}")
        if real_split not in ("val", "train"):
            raise ValueError(f"metrics.real_split must be 'val' or 'train'; got {real_split!r}")
        if n_fake < 2 or (n_real is not None and n_real < 2):
            raise ValueError("metrics.n_fake and metrics.n_real must be >= 2")
        self.extractor = build_extractor(extractor, weights_path)
        self.n_fake, self.n_real, self.real_split = int(n_fake), n_real, real_split
        self.batch_size, self.cache = int(batch_size), StatsCache(cache_dir)
        self.kid_subset_size, self.kid_subsets, self.is_splits = kid_subset_size, kid_subsets, is_splits
        self.pr_k, self.seed = pr_k, seed
        self.real_extractions = 0  # real batches embedded (tests check that the cache is used)

    # ------------------------------------------------------------------ features
    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, logits)`` of float images in [-1, 1], quantized as the reference code does."""
        device = next(self.extractor.parameters()).device
        return self.extractor.extract(to_uint8(images.to(device)))

    def to(self, device: torch.device | str) -> MetricEvaluator:
        self.extractor.to(device)
        return self

    def key_fields(self, dataset_id: str) -> dict[str, Any]:
        """Everything the real statistics depend on."""
        return {
            "dataset_id": dataset_id,
            "real_split": self.real_split,
            "n_real": self.n_real,
            "extractor": self.extractor.name,
            "weights_sha256": self.extractor.weights_sha256,
            "resize": self.extractor.resize,
            "quantization": QUANTIZATION,
        }

    def real_statistics(
        self, reals: Iterable[torch.Tensor], dataset_id: str, write_cache: bool = True
    ) -> RealStatistics:
        """Real features and FID statistics, from the cache or computed (and then cached)."""
        fields = self.key_fields(dataset_id)
        cached = self.cache.load(fields)
        if cached is not None:
            return cached
        chunks, shape, total = [], None, 0
        for batch in reals:
            if self.n_real is not None and total >= self.n_real:
                break
            if self.n_real is not None:
                batch = batch[: self.n_real - total]
            shape = tuple(batch.shape[1:])
            chunks.append(self.embed(batch)[0].cpu())
            self.real_extractions += 1
            total += batch.shape[0]
        if total < 2:
            raise ValueError(f"metrics need at least 2 real images; split '{self.real_split}' has {total}")
        stats = RealStatistics.from_features(torch.cat(chunks), shape, fields)
        if write_cache:
            self.cache.save(stats)
        return stats

    # ------------------------------------------------------------------ protocol
    def protocol(self, real: RealStatistics) -> dict[str, Any]:
        """The settings that produced a result; identical protocols give comparable numbers."""
        c, h, w = real.image_shape
        return {
            **real.key,
            "n_real": real.n,
            "n_fake": self.n_fake,
            "img_size": h if h == w else f"{h}x{w}",
            "channels": c,
            "metrics": sorted(self.names),
            "kid_subset_size": self.kid_subset(real.n),
            "kid_subsets": self.kid_subsets,
            "is_splits": self.is_splits,
            "pr_k": self.pr_k,
            "fake_seed": self.seed,
        }

    def record(self, real: RealStatistics) -> dict[str, Any]:
        return protocol_record(self.protocol(real))

    def kid_subset(self, n_real: int) -> int:
        return min(self.kid_subset_size, n_real, self.n_fake)

    # ------------------------------------------------------------------ evaluation
    def _build_metrics(self, real: RealStatistics, rank: int, world_size: int) -> dict[str, Metric]:
        d, device = self.extractor.num_features, next(self.extractor.parameters()).device
        metrics: dict[str, Metric] = {}
        if "fid" in self.names:
            metrics["fid"] = FrechetInceptionDistance(PrecomputedFeatures(d), reset_real_features=False)
        if "kid" in self.names:
            metrics["kid"] = KernelInceptionDistance(
                PrecomputedFeatures(d), subsets=self.kid_subsets, subset_size=self.kid_subset(real.n)
            )
        if "is" in self.names:
            metrics["is"] = InceptionScore(PrecomputedFeatures(d), splits=self.is_splits)
        if "pr" in self.names:
            metrics["pr"] = PrecisionRecall(self.pr_k)
        for metric in metrics.values():
            metric.to(device)
        shard = real.features[rank::world_size].to(device)
        if "fid" in metrics:
            if world_size == 1:  # the cached float64 statistics themselves
                load_fid_statistics(metrics["fid"], real.mean, real.cov, real.n, real=True)
            else:  # this rank's share of the sums; the all-reduce adds the shares up
                metrics["fid"].update(shard, real=True)
        for name in ("kid", "pr"):
            if name in metrics:
                metrics[name].update(shard, real=True)
        return metrics

    @torch.no_grad()
    def evaluate(
        self, fakes: Iterable[torch.Tensor], real: RealStatistics, rank: int = 0, world_size: int = 1
    ) -> dict[str, float]:
        """Metric values of generated images; every rank must call it under DDP.

        Args:
            fakes: float batches in [-1, 1] (this rank's share of the ``n_fake`` images).
            real: the real statistics (:meth:`real_statistics`).
            rank: this process's rank.
            world_size: number of processes; each holds ``real.features[rank::world_size]``.

        Returns:
            ``{"val/fid": ..., "val/kid_mean": ..., "val/kid_std": ..., "val/is_mean": ...,
            "val/is_std": ..., "val/precision": ..., "val/recall": ...}`` for the chosen metrics.
        """
        metrics = self._build_metrics(real, rank, world_size)
        for batch in fakes:
            self._update(metrics, *self.embed(batch))
        return self._compute(metrics)

    @torch.no_grad()
    def score(self, features: torch.Tensor, logits: torch.Tensor, real: RealStatistics) -> dict[str, float]:
        """:meth:`evaluate` (one process) for generated images already embedded (``features``, ``logits``)."""
        metrics = self._build_metrics(real, 0, 1)
        device = next(self.extractor.parameters()).device
        self._update(metrics, features.double().to(device), logits.double().to(device))
        return self._compute(metrics)

    @staticmethod
    def _update(metrics: dict[str, Metric], features: torch.Tensor, logits: torch.Tensor) -> None:
        for name, metric in metrics.items():
            if name == "is":
                metric.update(logits)
            else:
                metric.update(features, real=False)

    def _compute(self, metrics: dict[str, Metric]) -> dict[str, float]:
        results: dict[str, float] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # KID subsets and IS splits use the global generator
            for name, metric in metrics.items():
                value = metric.compute()
                if name == "fid":
                    results["val/fid"] = float(value)
                elif name == "kid":
                    results["val/kid_mean"], results["val/kid_std"] = float(value[0]), float(value[1])
                elif name == "is":
                    results["val/is_mean"], results["val/is_std"] = float(value[0]), float(value[1])
                else:
                    results["val/precision"], results["val/recall"] = float(value[0]), float(value[1])
        return results

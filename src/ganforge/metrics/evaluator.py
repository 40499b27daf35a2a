"""One place that turns real and generated images into the metrics named in ``metrics.names``.

The training callback and ``ganforge-eval`` both use :class:`MetricEvaluator`. Images are
quantized to uint8 with rounding, embedded once by the chosen extractor, and handed to each
selected metric: a class registered in :mod:`ganforge.metrics.registry` (FID, KID, IS,
precision/recall, density/coverage and intra-class FID ship in :mod:`ganforge.metrics.scores`).
Real features come from the on-disk cache when they were computed before.

Intra-class FID reads class labels: :meth:`MetricEvaluator.reals` then asks the data for
``(images, labels)`` batches and :meth:`MetricEvaluator.fakes` pairs each generated batch with
the labels the scheme's ``metric_fakes`` drew (sample ``i`` has label ``i % num_classes``).

Under DDP each rank embeds its share of the generated images and holds the share
``rank::world_size`` of the real features; ``compute()`` is a collective that every rank calls,
and its all-reduce (FID sums) or all-gather (KID, IS, precision/recall features) restores the
complete sets, so FID equals the single-process value. Every rank holds a non-empty share of each
state, as the gathers of list states require.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from ganforge.metrics.cache import RealStatistics, StatsCache
from ganforge.metrics.features import build_extractor, extractor_class
from ganforge.metrics.protocol import QUANTIZATION, protocol_record
from ganforge.metrics.registry import QualityMetric, check_names, registered_metrics, setting_defaults
from ganforge.utils.images import to_uint8
from ganforge.validation import ConfigError


class MetricEvaluator:
    """Computes the chosen metrics of generated images against cached real statistics.

    Args:
        names: registered metrics to compute (``fid``, ``kid``, ``is``, ``pr``, ``dc``, ``fid_intra``).
        extractor: ``domain`` (offline digit classifier), ``inception`` (FID InceptionV3),
            ``dinov2``/``clip`` or a torch-fidelity DINOv2/CLIP name (:data:`~ganforge.metrics.features.EXTRACTORS`).
        weights_path: the extractor's weights file; ``None`` = its default place.
        n_fake: generated images per evaluation.
        n_real: real images (the first of the split); ``None`` = the whole split.
        real_split: ``val`` or ``train``.
        batch_size: images per extractor forward.
        cache_dir: folder of cached real statistics; ``None`` disables the cache.
        seed: seeds the generated samples and each metric's own random subsets or splits.
        **settings: the metrics' own settings (``kid_subset_size``, ``kid_subsets``,
            ``is_splits``, ``pr_k``, ...); an unknown key is refused with the valid ones.
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
        seed: int = 0,
        **settings: Any,
    ):
        self.names = check_names(names)
        valid = setting_defaults()
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise ValueError(f"unknown metrics setting(s) {unknown}; the metrics read {', '.join(valid)}")
        if real_split not in ("val", "train"):
            raise ValueError(f"metrics.real_split must be 'val' or 'train'; got {real_split!r}")
        if n_fake < 2 or (n_real is not None and n_real < 2):
            raise ValueError("metrics.n_fake and metrics.n_real must be >= 2")
        self.n_fake, self.n_real, self.real_split = int(n_fake), n_real, real_split
        self.batch_size, self.cache, self.seed = int(batch_size), StatsCache(cache_dir), seed
        self.metrics: dict[str, QualityMetric] = {
            name: cls(self.n_fake, seed, **settings) for name, cls in registered_metrics().items()
        }
        for name in self.names:
            self.metrics[name].check()
        no_logits = [n for n in self.names if self.metrics[n].needs_logits]
        if no_logits and not extractor_class(extractor).has_logits:
            raise ValueError(
                f"metric(s) {no_logits} need class logits, which extractor '{extractor}' does not give; "
                f"leave them out of metrics.names (e.g. [fid,kid,pr,dc])"
            )
        self.needs_labels = any(self.metrics[n].needs_labels for n in self.names)
        self.extractor = build_extractor(extractor, weights_path)  # last: the slowest check
        self.real_extractions = 0  # real batches embedded (tests check that the cache is used)
        self.details: dict[str, Any] = {}  # the latest evaluation's per-class values and such

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

    def reals(self, datamodule: Any, split: str | None = None) -> Iterable[Any]:
        """The data's real images of ``split`` (default ``real_split``), with labels when a metric needs them."""
        split = split or self.real_split
        return (
            datamodule.metric_reals(split, labels=True)
            if self.needs_labels
            else datamodule.metric_reals(split)
        )

    def fakes(self, module: Any, rank: int = 0, world_size: int = 1, datamodule: Any = None) -> Iterable[Any]:
        """``module.metric_fakes`` for this evaluation, each batch with its labels when a metric needs them.

        Raises:
            ConfigError: a metric needs labels but the module is not conditional (:meth:`check_module`).
        """
        num_classes = self.check_module(module)
        batches = module.metric_fakes(self.n_fake, self.batch_size, self.seed, rank, world_size, datamodule)
        if not self.needs_labels:
            return batches
        return with_labels(batches, metric_fake_labels(self.n_fake, num_classes, rank, world_size))

    def check_module(self, module: Any) -> int:
        """The number of classes ``module`` generates; refuses a module that is not conditional when
        a metric compares classes (the training callback asks before training, ``fakes`` on every use).

        Raises:
            ConfigError: a metric needs labels and ``module`` has no classes.
        """
        num_classes = int(getattr(module, "num_classes", 0) or 0)
        if self.needs_labels and num_classes < 1:
            raise ConfigError(
                f"metrics {self.label_metrics()} compare classes and need a conditional model "
                "(model.num_classes > 0, e.g. model=sngan_cond) on labelled data"
            )
        return num_classes

    def label_metrics(self) -> list[str]:
        return [n for n in self.names if self.metrics[n].needs_labels]

    def real_statistics(
        self, reals: Iterable[Any], dataset_id: str, write_cache: bool = True
    ) -> RealStatistics:
        """Real features and FID statistics, from the cache or computed (and then cached).

        ``reals`` yields image batches, or ``(images, labels)`` pairs (:meth:`reals`) when a
        metric needs labels; a cached entry without labels is then computed again.
        """
        fields = self.key_fields(dataset_id)
        cached = self.cache.load(fields)
        if cached is not None and (cached.labels is not None or not self.needs_labels):
            return cached
        chunks, label_chunks, shape, total = [], [], None, 0
        for batch in reals:
            batch, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
            if self.n_real is not None and total >= self.n_real:
                break
            if self.n_real is not None:
                batch = batch[: self.n_real - total]
                labels = None if labels is None else labels[: self.n_real - total]
            shape = tuple(batch.shape[1:])
            chunks.append(self.embed(batch)[0].cpu())
            if labels is not None:
                label_chunks.append(torch.as_tensor(labels).long().cpu())
            self.real_extractions += 1
            total += batch.shape[0]
        if total < 2:
            raise ValueError(f"metrics need at least 2 real images; split '{self.real_split}' has {total}")
        if self.needs_labels and len(label_chunks) != len(chunks):
            raise ValueError(f"{self.label_metrics()} need the real images' class labels; the data gave none")
        labels = torch.cat(label_chunks) if label_chunks else None
        stats = RealStatistics.from_features(torch.cat(chunks), shape, fields, labels)
        if write_cache:
            self.cache.save(stats)
        return stats

    # ------------------------------------------------------------------ protocol
    def protocol(self, real: RealStatistics) -> dict[str, Any]:
        """The settings that produced a result; identical protocols give comparable numbers.

        The selected metrics add their entries, and so do fid/kid/is/pr always (their settings
        were in every protocol before the registry; keeping them keeps the ids).
        """
        c, h, w = real.image_shape
        protocol = {
            **real.key,
            "n_real": real.n,
            "n_fake": self.n_fake,
            "img_size": h if h == w else f"{h}x{w}",
            "channels": c,
            "metrics": sorted(self.names),
            "fake_seed": self.seed,
        }
        for name, metric in self.metrics.items():
            if name in self.names or metric.recorded_always:
                protocol.update(metric.protocol(real.n))
        return protocol

    def record(self, real: RealStatistics) -> dict[str, Any]:
        return protocol_record(self.protocol(real))

    # ------------------------------------------------------------------ evaluation
    def _begin(self, real: RealStatistics, rank: int, world_size: int) -> list[QualityMetric]:
        device = next(self.extractor.parameters()).device
        shard = real.features[rank::world_size].to(device)
        chosen = [self.metrics[name] for name in self.names]
        for metric in chosen:
            metric.begin(real, shard, world_size)
        return chosen

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
        chosen = self._begin(real, rank, world_size)
        for batch in fakes:
            batch, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
            features, logits = self.embed(batch)
            self._update(chosen, features, logits, labels)
        return self._compute(chosen)

    @torch.no_grad()
    def score(
        self,
        features: torch.Tensor,
        logits: torch.Tensor,
        real: RealStatistics,
        labels: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """:meth:`evaluate` (one process) for generated images already embedded (``features``, ``logits``)."""
        chosen = self._begin(real, 0, 1)
        device = next(self.extractor.parameters()).device
        self._update(chosen, features.double().to(device), logits.double().to(device), labels)
        return self._compute(chosen)

    def _update(
        self,
        chosen: list[QualityMetric],
        features: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> None:
        for metric in chosen:
            if not metric.needs_labels:
                metric.update(features, logits)
            elif labels is None:
                raise ValueError(f"metric '{metric.name}' needs the generated images' class labels")
            else:
                metric.update(features, logits, torch.as_tensor(labels).long().to(features.device))

    def _compute(self, chosen: list[QualityMetric]) -> dict[str, float]:
        results: dict[str, float] = {}
        self.details = {}
        for metric in chosen:
            metric.details = {}
            results.update(metric.compute())
            self.details.update(metric.details)
        return results


def metric_fake_labels(n: int, num_classes: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The labels of a conditional scheme's ``metric_fakes``: sample ``i`` has ``i % num_classes``,
    rank ``r`` holds samples ``r, r + world_size, ...`` (``GANModule.metric_fakes``)."""
    return torch.arange(rank, n, world_size) % num_classes


def with_labels(
    batches: Iterable[torch.Tensor], labels: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(batch, its labels)``: ``labels`` cut into the batches' sizes, in order."""
    start = 0
    for batch in batches:
        yield batch, labels[start : start + batch.shape[0]]
        start += batch.shape[0]

"""The metric registry: ``metrics.names`` entries name registered :class:`QualityMetric` classes.

A metric is one class: its name (what ``metrics.names`` lists), its settings (``metrics.*`` keys
and their defaults), the protocol entries those settings contribute, and how it takes the real
features, the generated features and logits, and turns them into logged values. The classes
live one per file in :mod:`ganforge.metrics.scores`; every module there is imported when the
registry is first asked, so a new metric is one new file there and its name in a config list.

An unknown name is refused with the valid ones listed; nothing falls through to a default metric.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganforge.metrics.cache import RealStatistics

_REGISTRY: dict[str, type[QualityMetric]] = {}
_DISCOVERED = False


class QualityMetric:
    """Base of a registered metric; one instance holds its settings for a whole run.

    Subclasses set ``name``, ``settings`` (their ``metrics.*`` keys with defaults, prefixed by
    the metric's name so keys never collide) and implement :meth:`begin`, :meth:`update` and
    :meth:`compute`. :meth:`begin` starts each evaluation afresh; ``compute()`` is a collective
    under DDP (every rank calls it), so per-evaluation state lives in a torchmetrics ``Metric``.

    Args:
        n_fake: generated images per evaluation (all ranks together).
        seed: the evaluation seed; a metric that draws random subsets seeds its own generator
            with it, so adding or removing another metric never changes its value.
        **settings: values for the keys in ``settings``; missing ones take the defaults.

    Attributes:
        recorded_always: record the settings in the protocol even when the metric is not
            selected. True only for fid/kid/is/pr, whose settings every protocol held before
            the registry existed (so their ids did not change); a new metric leaves it False.
        needs_logits: reads class logits (IS); refused with extractors that give none.
        needs_labels: reads class labels (intra-class FID): real statistics then carry the
            labels, and ``update`` gets the generated images' labels as a third argument.
        details: what ``compute`` found beyond the logged scalars (per-class values), written to
            the metrics JSON files, never logged.
    """

    name: ClassVar[str] = ""
    settings: ClassVar[dict[str, Any]] = {}
    recorded_always: ClassVar[bool] = False
    needs_logits: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False

    def __init__(self, n_fake: int, seed: int, **settings: Any):
        self.n_fake, self.seed = int(n_fake), int(seed)
        self.options = {key: settings.get(key, default) for key, default in self.settings.items()}
        self.details: dict[str, Any] = {}

    def check(self) -> None:
        """Refuse settings that cannot work with ``n_fake`` (``ValueError``); run when selected."""

    def protocol(self, n_real: int) -> dict[str, Any]:
        """The protocol entries: the settings that change this metric's value."""
        return dict(self.options)

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        """Start an evaluation: fresh state, holding this rank's ``shard`` of the real features."""
        raise NotImplementedError

    def update(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        """Add a batch of generated images' features and class logits."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The logged values, e.g. ``{"val/kid_mean": ..., "val/kid_std": ...}``."""
        raise NotImplementedError


class FeatureSets(Metric):
    """Features of one evaluation, kept per side and gathered from every rank by ``compute()``.

    Args:
        sides: the sides kept, ``("real", "fake")`` or ``("fake",)``.
    """

    full_state_update = False

    def __init__(self, sides: tuple[str, ...] = ("real", "fake"), **kwargs: Any):
        super().__init__(**kwargs)
        self.sides = sides
        for side in sides:
            self.add_state(side, [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, real: bool) -> None:
        getattr(self, "real" if real else "fake").append(features)

    def compute(self) -> dict[str, torch.Tensor]:
        return {side: dim_zero_cat(getattr(self, side)) for side in self.sides}


class FeatureSetMetric(QualityMetric):
    """A metric of the whole real and generated feature sets (KID, precision/recall, ...).

    Subclasses implement :meth:`score`; gathering the sets across ranks is done here.
    """

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        self.state = FeatureSets().to(shard.device)
        self.state.update(shard, real=True)

    def update(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        self.state.update(features, real=False)

    def compute(self) -> dict[str, float]:
        sets = self.state.compute()
        return self.score(sets["real"], sets["fake"])

    def score(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """The logged values from all real and all generated features."""
        raise NotImplementedError


def register_metric(cls: type[QualityMetric]) -> type[QualityMetric]:
    """Class decorator: make ``cls`` selectable as ``metrics.names=[<cls.name>]``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    other = _REGISTRY.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise TypeError(f"metric name '{cls.name}' is taken by {other.__name__}")
    for key in cls.settings:
        owner = next((m for m in _REGISTRY.values() if key in m.settings and m.name != cls.name), None)
        if owner is not None:
            raise TypeError(f"metrics.{key} of '{cls.name}' is already a setting of '{owner.name}'")
    _REGISTRY[cls.name] = cls
    return cls


def registered_metrics() -> dict[str, type[QualityMetric]]:
    """Every registered metric by name, importing :mod:`ganforge.metrics.scores` on first use."""
    global _DISCOVERED
    if not _DISCOVERED:
        from ganforge.metrics import scores

        for module in pkgutil.iter_modules(scores.__path__):
            importlib.import_module(f"{scores.__name__}.{module.name}")
        _DISCOVERED = True
    return dict(sorted(_REGISTRY.items()))


def check_names(names: Iterable[str]) -> list[str]:
    """``names`` as a list, or a one-line ``ValueError`` naming the unknown ones and the valid ones."""
    names, known = [str(n) for n in names], registered_metrics()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown} in metrics.names; choose from {', '.join(known)}")
    if not names:
        raise ValueError(f"metrics.names is empty; choose from {', '.join(known)} (or use metrics=none)")
    return names


def setting_defaults() -> dict[str, Any]:
    """Every registered metric's ``metrics.*`` settings with their defaults."""
    return {key: value for cls in registered_metrics().values() for key, value in cls.settings.items()}

"""What callbacks read from a training scheme and from its data: typed protocols.

Callbacks (checkpoints, metrics, sample grids, panels, the divergence guard) depend on these
protocols, never on attribute names looked up with ``getattr``. :class:`~ganforge.modules.scheme.TrainingScheme`
implements :class:`Scheme`; a scheme that draws images from noise also implements
:class:`NoiseSampler`, one that translates images :class:`Translator`. The protocols are
``runtime_checkable``, so a callback that needs one checks for it when fitting starts and
names what is missing instead of failing half-way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Scheme(Protocol):
    """Every training scheme: counters, the step's losses, the run config and metric samples.

    Attributes:
        iteration: training batches done (the x-axis of every logged value).
        g_steps: generator steps done.
        last_losses: the latest iteration's losses (0-dim tensors), read by the divergence guard.
        run_config: the resolved run config, stored in every checkpoint.
    """

    iteration: int
    g_steps: int
    last_losses: dict[str, torch.Tensor]
    run_config: dict | None

    def metric_fakes(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, datamodule: Any = None
    ) -> Iterator[torch.Tensor]:
        """Generated images in [-1, 1] for metrics: sample ``i`` depends on ``(seed, i)`` alone and
        rank ``r`` of ``world_size`` yields samples ``r, r + world_size, ...``."""
        ...


@runtime_checkable
class NoiseSampler(Protocol):
    """A scheme whose generator maps latent noise (and labels) to samples: grids and mode metrics."""

    latent_dim: int
    num_classes: int

    def generate(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        ema: bool = True,
        truncation_psi: float = 1.0,
    ) -> torch.Tensor:
        """Samples from latents (by the EMA generator by default; truncated toward the average
        ``w`` when ``truncation_psi < 1``, for generators with a mapping network)."""
        ...

    def fixed_samples(self, truncation_psi: float = 1.0) -> torch.Tensor:
        """Samples from the fixed noise (and labels) of the sample grid."""
        ...


@runtime_checkable
class Translator(Protocol):
    """A scheme that translates images between two domains: panels and ``ganforge-translate``."""

    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """``images`` in [-1, 1] translated A -> B (or B -> A where the scheme has that direction)."""
        ...

    def panel(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A uint8 grid with one row per held-out image: input, translation, and what the scheme adds."""
        ...


@runtime_checkable
class MetricData(Protocol):
    """A data module that can feed quality metrics.

    Attributes:
        name: the data's name in messages.
        content: ``"images"``, ``"digits"`` (the offline digit network may embed it) or ``"points"``.
        dataset_id: names the data and every setting that changes its images (the metric cache key).
    """

    name: str
    content: str

    @property
    def dataset_id(self) -> str: ...

    def metric_reals(self, split: str = "val") -> Iterator[torch.Tensor]:
        """Batches of real images in [-1, 1] of ``split`` (``"val"`` or ``"train"``)."""
        ...


def require(obj: object, protocol: type, what: str) -> None:
    """Raise a :class:`~ganforge.config.ConfigError` naming the members ``obj`` lacks for ``what``."""
    if isinstance(obj, protocol):
        return
    from ganforge.config import ConfigError

    wanted = [name for name in _members(protocol) if not hasattr(obj, name)]
    raise ConfigError(
        f"{what} needs {protocol.__name__} ({', '.join(_members(protocol))}); "
        f"{type(obj).__name__} lacks {', '.join(wanted) or 'them'}"
    )


def _members(protocol: type) -> list[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {k for k, v in vars(protocol).items() if callable(v) or isinstance(v, property)}
    return sorted(n for n in names if not n.startswith("_"))

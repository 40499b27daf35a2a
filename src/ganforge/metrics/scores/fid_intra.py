"""Intra-class FID of conditional models (Miyato & Koyama 2018, "cGANs with Projection
Discriminator", where it is called intra FID).

For every class ``c`` of the real images, the FID between the real images labelled ``c`` and the
generated images drawn with label ``c``; ``val/fid_intra`` is the mean over classes and the
per-class values go to the metrics JSON (``fid_intra_per_class``), not to the logged scalars.
Each per-class FID rests on about ``n_fake / num_classes`` generated and ``n_real / num_classes``
real images, so it is biased upwards more than FID on the whole set (FID falls with N):
compare intra-class FIDs only at equal sample counts, as the protocol id enforces.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.registry import QualityMetric, register_metric
from ganforge.metrics.scores.fid import frechet_distance


class LabelledFeatures(Metric):
    """Generated features and their class labels, gathered from every rank by ``compute()``."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("features", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features.append(features)
        self.labels.append(labels)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return dim_zero_cat(self.features), dim_zero_cat(self.labels)


def intra_class_fid(
    real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor
) -> dict[int, float]:
    """FID per class of the real labels, between the real and generated features of that class.

    Raises:
        ValueError: a class has fewer than 2 real or 2 generated images.
    """
    per_class = {}
    for c in torch.unique(real_labels).tolist():
        r, f = real[real_labels == c], fake[fake_labels.to(fake.device) == c]
        if len(r) < 2 or len(f) < 2:
            raise ValueError(
                f"intra-class FID: class {c} has {len(r)} real and {len(f)} generated images; each class "
                "needs at least 2 of each (raise metrics.n_fake to >= 2 * num_classes, or metrics.n_real)"
            )
        per_class[int(c)] = frechet_distance(r, f)
    return per_class


@register_metric
class IntraClassFID(QualityMetric):
    """``val/fid_intra``: the mean over classes of the per-class FIDs; needs a conditional model."""

    name = "fid_intra"
    needs_labels = True

    def begin(self, real: RealStatistics, shard: torch.Tensor, world_size: int) -> None:
        if real.labels is None:
            raise ValueError("fid_intra needs the real images' class labels; the data gave none")
        self.real = real
        self.state = LabelledFeatures().to(shard.device)

    def update(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.state.update(features, labels)

    def compute(self) -> dict[str, float]:
        fake, fake_labels = self.state.compute()
        real = self.real.features.to(fake.device)
        per_class = intra_class_fid(real, self.real.labels.to(fake.device), fake, fake_labels)
        self.details = {"fid_intra_per_class": {str(c): v for c, v in per_class.items()}}
        return {"val/fid_intra": sum(per_class.values()) / len(per_class)}

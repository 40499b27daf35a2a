"""Scores of image-to-image translations against a known target, each beside its baseline.

For held-out images whose correct translation is known (paired data; the painterly filter's
output for ``photo2painting``, the ink style's for ``digits2ink``), :class:`TargetScores`
accumulates PSNR and SSIM (torchmetrics; images in [-1, 1], so data range 2) of the
translations beside two baselines a model has to beat: the untranslated inputs ("do
nothing", ``*_identity``) and the mean of the training targets, the one image closest in L2 to
every target on average (``*_mean_target``). :func:`label_accuracy` is the share of
images a classifier assigns their source's label (label preservation, e.g. digits -> MNIST).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

SOURCES = ("", "_identity", "_mean_target")  # the translations, then the two baselines


class TargetScores(nn.Module):
    """PSNR and SSIM of translations and of both baselines against the targets, over a whole split."""

    def __init__(self):
        super().__init__()
        self.psnr = nn.ModuleDict({s or "_": PeakSignalNoiseRatio(data_range=2.0) for s in SOURCES})
        self.ssim = nn.ModuleDict(
            {s or "_": StructuralSimilarityIndexMeasure(data_range=2.0) for s in SOURCES}
        )

    def update(
        self,
        translated: torch.Tensor,
        inputs: torch.Tensor,
        target: torch.Tensor,
        mean_target: torch.Tensor | None = None,
    ) -> None:
        """Add one batch (all ``(N, C, H, W)`` in [-1, 1]; ``mean_target`` ``(1, C, H, W)``, or
        ``None`` to leave that baseline out)."""
        images = {"_": translated, "_identity": inputs}
        if mean_target is not None:
            images["_mean_target"] = mean_target.to(target).expand_as(target)
        for key, batch in images.items():
            self.psnr[key].update(batch.clamp(-1, 1), target)
            self.ssim[key].update(batch.clamp(-1, 1), target)

    def compute(self) -> dict[str, torch.Tensor]:
        """``val/psnr``, ``val/ssim`` and both with ``_identity`` and ``_mean_target`` appended
        (the last two only when a mean target came), or ``{}`` if no batch came."""
        scores = {}
        for source in SOURCES:
            key = source or "_"
            if self.psnr[key].total > 0:
                scores[f"val/psnr{source}"] = self.psnr[key].compute()
                scores[f"val/ssim{source}"] = self.ssim[key].compute()
        return scores

    def reset(self) -> None:
        for metric in (*self.psnr.values(), *self.ssim.values()):
            metric.reset()


def label_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of ``images`` that ``classifier`` (a digit classifier, any size, [-1, 1]) labels ``labels``."""
    from ganforge.metrics.domain import predict_digits

    return (predict_digits(classifier, images).to(labels.device) == labels).float().mean()

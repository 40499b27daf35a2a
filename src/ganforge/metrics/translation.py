"""Scores of image-to-image translations against a known target, each beside its baseline.

For held-out images whose correct translation is known (paired data; the painterly filter's
output for ``photo2painting``), :class:`TargetScores` accumulates PSNR and SSIM
(torchmetrics; images in [-1, 1], so data range 2) of the translations and of the untranslated
inputs, the "do nothing" baseline a model has to beat. :func:`label_accuracy` is the share of
images a classifier assigns their source's label (label preservation, e.g. digits -> MNIST).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure


class TargetScores(nn.Module):
    """PSNR and SSIM of translations and of their inputs against the targets, over a whole split."""

    def __init__(self):
        super().__init__()
        self.psnr, self.psnr_identity = (
            PeakSignalNoiseRatio(data_range=2.0),
            PeakSignalNoiseRatio(data_range=2.0),
        )
        self.ssim = StructuralSimilarityIndexMeasure(data_range=2.0)
        self.ssim_identity = StructuralSimilarityIndexMeasure(data_range=2.0)

    def update(self, translated: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch (all ``(N, C, H, W)`` in [-1, 1])."""
        for psnr, ssim, images in (
            (self.psnr, self.ssim, translated),
            (self.psnr_identity, self.ssim_identity, inputs),
        ):
            psnr.update(images.clamp(-1, 1), target)
            ssim.update(images.clamp(-1, 1), target)

    def compute(self) -> dict[str, torch.Tensor]:
        """``{"val/psnr", "val/ssim", "val/psnr_identity", "val/ssim_identity"}``, or ``{}`` if no batch came."""
        if self.psnr.total == 0:
            return {}
        return {
            "val/psnr": self.psnr.compute(),
            "val/ssim": self.ssim.compute(),
            "val/psnr_identity": self.psnr_identity.compute(),
            "val/ssim_identity": self.ssim_identity.compute(),
        }

    def reset(self) -> None:
        for metric in (self.psnr, self.ssim, self.psnr_identity, self.ssim_identity):
            metric.reset()


def label_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of ``images`` that ``classifier`` (a digit classifier, any size, [-1, 1]) labels ``labels``."""
    from ganforge.metrics.domain import predict_digits

    return (predict_digits(classifier, images).to(labels.device) == labels).float().mean()

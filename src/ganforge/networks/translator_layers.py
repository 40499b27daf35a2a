"""Building blocks shared by the image-to-image networks (ResNet translator, U-Net, PatchGAN).

The CycleGAN/pix2pix reference code (Zhu et al. 2017; Isola et al. 2017) initialises every
convolution with N(0, 0.02) and uses instance normalisation (Ulyanov et al. 2016) or batch
normalisation; both choices live here once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")


def norm_layer(kind: str, channels: int, affine: bool = False) -> nn.Module:
    """A 2-D normalisation layer by name.

    Args:
        kind: ``instance`` (no running stats, as in CycleGAN), ``batch`` or ``none``.
        channels: feature maps to normalise.
        affine: give instance norm a learned scale and shift per channel (CycleGAN's has none;
            the batch norm at batch size 1 that pix2pix used has them). Batch norm always has them.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {kind!r}")


class TestTimeDropout(nn.Dropout):
    """Dropout that can stay on in eval mode: pix2pix's noise source, kept at test time as in the
    paper (the reference ``test.py`` runs without ``--eval``).

    Args:
        p: drop probability.
        at_eval: keep dropping in eval mode (validation, metrics, ``ganforge-translate``).
    """

    def __init__(self, p: float = 0.5, at_eval: bool = True):
        super().__init__(p)
        self.at_eval = at_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training or self.at_eval, self.inplace)


class InputResidual(nn.Module):
    """The last layer of a translator that predicts a change to its input (``residual=True``).

    The output is ``clamp(x + change, -1, 1)`` (with the clamp's gradient passed straight
    through) instead of ``tanh(change)``: the translator starts
    as the identity (``layer``'s weights and bias are zeroed here) and learns only what the style
    alters, which suits styles that keep the layout and most colours of the input (photo ->
    painting). Global residual learning as in image restoration networks (Kim et al. 2016, VDSR).

    Args:
        layer: the translator's last convolution (its output is the change).
    """

    def __init__(self, layer: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        self.layer = layer
        self.zero_change()

    def zero_change(self) -> None:
        """Zero the last layer: the translator outputs its input unchanged."""
        nn.init.zeros_(self.layer.weight)
        if self.layer.bias is not None:
            nn.init.zeros_(self.layer.bias)

    def forward(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = x + self.layer(features)
        # Clipped forward, straight-through backward: a plain clamp passes no gradient where the
        # input is already at -1 or 1 (black or white pixels), so those would never change.
        return y + (y.clamp(-1.0, 1.0) - y).detach()


def uses_bias(kind: str) -> bool:
    """Convolutions before a batch norm need no bias (the norm's shift replaces it)."""
    return kind != "batch"


def init_translator_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, gain) weights and zero biases; N(1, gain) scales for affine norms (reference init);
    the last layer of a residual translator (:class:`InputResidual`) starts at zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, InputResidual):
            m.zero_change()

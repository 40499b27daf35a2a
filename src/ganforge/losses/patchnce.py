"""PatchNCE: the patchwise contrastive loss of CUT and FastCUT, and the objective that weighs it.

Reference:
    Park, Efros, Zhang, Zhu 2020, "Contrastive Learning for Unpaired Image-to-Image Translation"
    (arXiv:2007.15651). A patch of the translation G(x) (the query) should match the patch of the
    input x at the same place (the positive) rather than the input's patches elsewhere (the
    negatives). Features come from several layers of G's encoder; each layer's features pass a
    two-layer MLP head and are L2-normalised; the loss is the cross-entropy of the positive among
    ``1 + num_patches - 1`` candidates at temperature 0.07. Negatives are drawn from the same image
    only, the paper's choice for CUT and FastCUT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.losses.translation import TranslationObjective

SELF_SIMILARITY_LOGIT = -10.0  # a patch compared with its own key: exp(-10 / T) is ~0, not a negative


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Rows of ``x`` divided by their L2 norm plus ``eps`` (the CUT code's normalisation).

    An all-zero row (a head whose ReLU silenced every unit, e.g. on a flat black patch) stays
    finite in both directions: ``vector_norm``'s gradient at zero is zero, where ``sqrt`` of the
    summed squares gives ``inf * 0 = nan`` and poisons the head's weights."""
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)


def sample_patch_ids(features: Sequence[torch.Tensor], num_patches: int) -> list[torch.Tensor]:
    """Random patch locations per feature map: ``min(num_patches, H * W)`` distinct flat indices
    into ``H * W``, the same for every image of the batch (drawn on the CPU generator, so a run
    draws the same ones on any device)."""
    ids = []
    for feature in features:
        locations = feature.shape[2] * feature.shape[3]
        ids.append(torch.randperm(locations)[: min(num_patches, locations)].to(feature.device))
    return ids


def gather_patches(feature: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The feature vectors of ``feature`` (B, C, H, W) at the flat locations ``ids`` (P,): a
    ``(B * P, C)`` tensor, image-major (rows ``b * P ... b * P + P - 1`` belong to image ``b``)."""
    flat = feature.flatten(2).transpose(1, 2)  # (B, H * W, C)
    return flat[:, ids, :].flatten(0, 1)


class PatchHeads(nn.Module):
    """One two-layer MLP projection head per feature layer (CUT's ``netF=mlp_sample``).

    Each head maps a patch's feature vector through ``Linear(C, width) -> ReLU -> Linear(width,
    width)`` and the result is L2-normalised. Weights are Xavier-normal with gain 0.02 and biases
    zero, the initialisation of the CUT code.

    Args:
        channels: feature channels of each layer, in the order the features are passed.
        width: units of both layers (the paper: 256).
    """

    def __init__(self, channels: Sequence[int], width: int = 256):
        super().__init__()
        if width < 1:
            raise ValueError(f"model.head_width must be >= 1; got {width}")
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, width), nn.ReLU(), nn.Linear(width, width)) for c in channels
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight, gain=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor], ids: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Project the patches ``ids[i]`` of ``features[i]`` by head ``i``: a list of ``(B * P_i, width)``
        unit vectors."""
        if len(features) != len(self.mlps):
            raise ValueError(f"{len(self.mlps)} heads but {len(features)} feature maps")
        return [
            l2_normalize(mlp(gather_patches(f, i)))
            for mlp, f, i in zip(self.mlps, features, ids, strict=True)
        ]


def patch_nce_logits(
    query: torch.Tensor, key: torch.Tensor, n_images: int, temperature: float
) -> torch.Tensor:
    """The logits of PatchNCE: row ``j`` is ``[q_j . k_j, q_j . k_m (m != j, same image)] / T``.

    Args:
        query: ``(B * P, D)`` projected patches of the translation (gradients flow through them).
        key: ``(B * P, D)`` projected patches of the source at the same locations (detached here).
        n_images: ``B``; the negatives of a patch are the other ``P - 1`` patches of its own image.
        temperature: ``T`` (the paper: 0.07).

    Returns:
        ``(B * P, 1 + P)`` logits; column 0 is the positive. The column of a patch's own key among
        the negatives holds ``-10 / T`` (a near-zero probability), which keeps every row ``1 + P``
        wide as in the reference code.
    """
    key = key.detach()
    positive = (query * key).sum(1, keepdim=True)
    q = query.reshape(n_images, -1, query.shape[1])
    k = key.reshape(n_images, -1, key.shape[1])
    negatives = torch.bmm(q, k.transpose(1, 2))  # (B, P, P)
    own = torch.eye(q.shape[1], dtype=torch.bool, device=q.device).expand_as(negatives)
    negatives = negatives.masked_fill(own, SELF_SIMILARITY_LOGIT)
    return torch.cat([positive, negatives.flatten(0, 1)], 1) / temperature


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, n_images: int, temperature: float) -> torch.Tensor:
    """PatchNCE of one layer: the cross-entropy of the positive (column 0 of :func:`patch_nce_logits`),
    averaged over patches."""
    logits = patch_nce_logits(query, key, n_images, temperature)
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


@dataclass
class CUTObjective(TranslationObjective):
    """CUT's and FastCUT's objective (``loss=cut`` / ``loss=fastcut``).

    ``g_loss_total = lambda_gan * GAN(G(A)) + lambda_nce * NCE``, where NCE is the PatchNCE loss
    averaged over ``nce_layers``, and with ``nce_identity`` the mean of NCE(G(A), A) and
    NCE(G(B), B).

    Args:
        gan_mode: ``lsgan`` (the paper's) or ``vanilla``.
        lambda_gan: weight of the generator's adversarial loss (paper: 1).
        lambda_nce: weight of PatchNCE (CUT: 1, FastCUT: 10).
        nce_identity: add PatchNCE between B and G(B) (CUT: yes, FastCUT: no).
        nce_layers: the generator's feature points PatchNCE reads (see
            :class:`~ganforge.networks.resnet_translator.ResnetTranslator`).
        num_patches: patch locations sampled per layer and image (paper: 256).
        temperature: softmax temperature T (paper: 0.07).
        flip_equivariance: with probability 1/2 per step, translate horizontally flipped inputs and
            flip the translation's features back before PatchNCE (FastCUT: yes, CUT: no).
        lambda_cycle, lambda_identity, lambda_l1: CycleGAN's and pix2pix's weights; must stay 0.
    """

    schemes: ClassVar[tuple[str, ...]] = ("cut",)
    configs: ClassVar[str] = "loss=cut or loss=fastcut"
    models: ClassVar[str] = "model=cut or model=fastcut"

    lambda_cycle: float = 0.0
    lambda_identity: float = 0.0
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_identity: bool = True
    nce_layers: Sequence[str] = ("input", "down1", "down2", "block1", "block5")
    num_patches: int = 256
    temperature: float = 0.07
    flip_equivariance: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lambda_cycle", "lambda_identity", "lambda_l1"):
            if getattr(self, name):
                raise ValueError(f"loss.{name} has no part in CUT's objective; leave it at 0")
        for name in ("lambda_gan", "lambda_nce"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0; got {getattr(self, name)}")
        if self.lambda_gan == 0 and self.lambda_nce == 0:
            raise ValueError(
                "loss.lambda_gan and loss.lambda_nce are both 0: the generator would have no loss"
            )
        if isinstance(self.nce_layers, str):
            self.nce_layers = [n.strip() for n in self.nce_layers.split(",") if n.strip()]
        self.nce_layers = list(self.nce_layers)
        if self.lambda_nce > 0 and not self.nce_layers:
            raise ValueError("loss.nce_layers must name at least one feature point (e.g. [input, down1])")
        if self.num_patches < 1:
            raise ValueError(f"loss.num_patches must be >= 1; got {self.num_patches}")
        if self.temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0; got {self.temperature}")

"""Adversarial losses, one pure function per side.

Every discriminator loss has the signature ``d_loss_*(real_logits, fake_logits)`` and
every generator loss ``g_loss_*(fake_logits, real_logits)`` so a relativistic loss, which
needs both, fits the same slot. All return the batch mean.

References:
    minimax / non-saturating: Goodfellow et al. 2014, "Generative Adversarial Nets".
    least squares: Mao et al. 2017, "Least Squares Generative Adversarial Networks".
    hinge: Lim & Ye 2017; Miyato et al. 2018 (SNGAN); Zhang et al. 2019 (SAGAN).
    Wasserstein: Arjovsky et al. 2017; Gulrajani et al. 2017 (WGAN-GP).
    relativistic pairing: Jolicoeur-Martineau 2019; Huang et al. 2024 (R3GAN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Standard GAN discriminator loss: -log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Original minimax generator loss: log(1 - D(G(z))); saturates when D wins."""
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def d_loss_lsgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss with targets a=0 (fake), b=1 (real), halved as in the paper."""
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def g_loss_lsgan(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """LSGAN generator loss with target c=1."""
    return 0.5 * (fake_logits - 1).pow(2).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge generator loss: -E[D(G(z))]."""
    return -fake_logits.mean()


def d_loss_wasserstein(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss: E[D(G(z))] - E[D(x)]; needs a Lipschitz penalty beside it."""
    return fake_logits.mean() - real_logits.mean()


def g_loss_wasserstein(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Wasserstein generator loss: -E[D(G(z))]."""
    return -fake_logits.mean()


def d_loss_relativistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing discriminator loss: softplus(-(D(x) - D(G(z)))), pairs by index."""
    return F.softplus(fake_logits - real_logits).mean()


def g_loss_relativistic(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic pairing generator loss: softplus(-(D(G(z)) - D(x)))."""
    return F.softplus(real_logits - fake_logits).mean()


def aux_class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ACGAN auxiliary classification loss (Odena et al. 2017): cross-entropy of D's class head.

    D minimizes it on real and generated images, G on generated images (with their sampled labels).
    """
    return F.cross_entropy(class_logits, labels)


def topk_select(
    k: int, fake_logits: torch.Tensor, *rows: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    """Top-k training (Sinha et al. 2020): keep the ``k`` generated samples D rates most real.

    Rows are ranked by D's mean logit (a PatchGAN or packed D gives several per row); ``rows``
    (the real logits of the same pairs for the relativistic pairing, ACGAN's class logits and
    labels; ``None`` where absent) follow the same selection. Returns ``fake_logits`` and ``rows``.
    """
    keep = fake_logits.detach().reshape(len(fake_logits), -1).mean(1).topk(k).indices
    return fake_logits[keep], *(row[keep] if row is not None else None for row in rows)

"""Gradient penalties on the discriminator, as pure functions returning a scalar tensor, and
the path-length regularizer of the generator (:class:`PathLengthPenalty`, phase ``G reg``).

Every penalty has the signature ``penalty(discriminator, real, fake, labels=None,
fake_labels=None)`` so :class:`ganforge.losses.objective.Penalty` can hold any of them. The
``discriminator`` is any callable ``(images, labels) -> logits`` (the module passes D behind
its augmentation, so a penalty differentiates through the augmentation to the clean images,
as stylegan2-ada does). All gradients are per sample, so D must not use batch norm: each
penalty says so with :func:`per_sample_gradients`, which the config check reads.

References:
    gradient penalty: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs".
    R1 / R2: Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?";
    R1 + R2 with a relativistic loss: Huang et al. 2024, "The GAN is dead; long live the GAN!
    A Modern GAN Baseline" (R3GAN).
    path length: Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

Critic = Callable[..., torch.Tensor]


def per_sample_gradients(penalty: Callable) -> Callable:
    """Mark ``penalty`` as one that differentiates D per sample.

    Batch norm in D mixes the samples of a batch, so such a penalty would not see each sample's own
    gradient: the config check (``ganforge.validation``) reads the mark on the function a penalty
    config names and refuses ``model.discriminator.norm=batch`` beside it.
    """
    penalty.per_sample_gradients = True
    return penalty


def _logits(output) -> torch.Tensor:
    # An auxiliary-classifier D returns (logits, class_logits): penalties read the first.
    return output[0] if isinstance(output, tuple) else output


def _input_gradient(discriminator: Critic, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Per-sample gradient of D's logit w.r.t. its input, kept in the graph for double backprop."""
    x = x.detach().requires_grad_(True)
    logits = _logits(discriminator(x, labels))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.flatten(1)


@per_sample_gradients
def gradient_penalty(
    discriminator: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    fake_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP: ``E[(||grad D(x_hat)||_2 - 1)^2]`` at random points between real and fake.

    Each sample gets its own mixing weight ``eps ~ U[0, 1]``; a conditional D sees the real
    labels at the interpolates. The paper's weight lambda = 10 lives in the config.

    Args:
        discriminator: ``(images, labels) -> logits``.
        real: a batch of real images.
        fake: a batch of generated images of the same shape.
        labels: class labels of ``real`` (conditional models) or ``None``.
        fake_labels: unused; part of the common penalty signature.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    grad = _input_gradient(discriminator, x_hat, labels)
    return (grad.norm(2, dim=1) - 1).pow(2).mean()


@per_sample_gradients
def r1_penalty(
    discriminator: Critic,
    real: torch.Tensor,
    fake: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    fake_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """R1: ``E[||grad D(x)||^2]`` on real data (zero-centred; weight gamma / 2 in the config).

    Args:
        discriminator: ``(images, labels) -> logits``.
        real: a batch of real images.
        fake: unused; part of the common penalty signature.
        labels: class labels of ``real`` or ``None``.
        fake_labels: unused.
    """
    return _input_gradient(discriminator, real, labels).pow(2).sum(1).mean()


@per_sample_gradients
def r2_penalty(
    discriminator: Critic,
    real: torch.Tensor | None,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    fake_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """R2: ``E[||grad D(G(z))||^2]`` on generated data (weight gamma / 2 in the config).

    Args:
        discriminator: ``(images, labels) -> logits``.
        real: unused; part of the common penalty signature.
        fake: a batch of generated images (detached from G inside).
        labels: unused.
        fake_labels: class labels of ``fake`` or ``None``.
    """
    return _input_gradient(discriminator, fake, fake_labels).pow(2).sum(1).mean()


def path_lengths(
    generator, z: torch.Tensor, labels: torch.Tensor | None = None, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample ``sqrt(mean_layers ||J_w^T y||^2)``: the length of the change of ``w`` that moves the
    image along a random direction ``y ~ N(0, I) / sqrt(H W)`` (Karras et al. 2020, section 3.2).

    Args:
        generator: has ``sample_ws(z, labels) -> ws (N, num_ws, w_dim)`` and ``synthesis(ws) -> images``
            (:class:`ganforge.networks.stylegan2.StyleGAN2Generator`; style mixing applies in training).
        z: latents.
        labels: class labels or ``None``.
        noise: the image-space direction ``y``; ``None`` draws it.

    Returns:
        ``(N,)`` lengths, kept in the graph for the penalty's gradient.
    """
    ws = generator.sample_ws(z, labels)
    images = generator.synthesis(ws)
    if noise is None:
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.float().square().sum(2).mean(1).sqrt()


class PathLengthPenalty(nn.Module):
    """Path-length regularization of G: ``E[(|J_w^T y| - a)^2]``, ``a`` a running mean of the lengths.

    A generator-side penalty (``loss.g_penalties``, phase ``G reg``), called as ``fn(generator, z,
    labels)``. As stylegan2-ada: ``a <- a + decay * (mean length - a)`` each call (the gradient
    also flows through this step's update of ``a``), on the first ``N // batch_shrink`` latents.

    Args:
        decay: the running mean's update rate (0.01).
        batch_shrink: use ``1 / batch_shrink`` of the batch (2 in stylegan2-ada; 1 = all).
    """

    def __init__(self, decay: float = 0.01, batch_shrink: int = 2):
        super().__init__()
        if not 0 < decay <= 1 or batch_shrink < 1:
            raise ValueError(
                f"path length needs 0 < decay <= 1 and batch_shrink >= 1; got {decay}, {batch_shrink}"
            )
        self.decay, self.batch_shrink = decay, batch_shrink
        self.register_buffer("pl_mean", torch.zeros([]))

    @staticmethod
    def check_generator(generator) -> None:
        """Refuse a generator without a mapping network (no ``w`` to differentiate against)."""
        if not (hasattr(generator, "sample_ws") and hasattr(generator, "synthesis")):
            from ganforge.config import ConfigError

            raise ConfigError(
                f"loss.g_penalties.path_length differentiates images w.r.t. w, but {type(generator).__name__} "
                "has no mapping network; use model=stylegan2 or drop the penalty"
            )

    def forward(self, generator, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        n = max(1, z.shape[0] // self.batch_shrink)
        lengths = path_lengths(generator, z[:n], labels[:n] if labels is not None else None)
        pl_mean = self.pl_mean.lerp(lengths.mean(), self.decay)
        self.pl_mean.copy_(pl_mean.detach())
        return (lengths - pl_mean).square().mean()

"""Gradient penalties on the discriminator, as pure functions returning a scalar tensor.

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
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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

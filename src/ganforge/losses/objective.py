"""The adversarial objective a GAN module trains with: a D loss, a G loss, D steps per G step
and the penalties added to D's loss. Built from the ``loss`` config group."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from ganforge.config import check_value

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def plain_partial(fn: Callable) -> Callable:
    """``fn`` as a plain :class:`functools.partial` when Hydra built it as a subclass of one.

    A ``_partial_: true`` node instantiates to Hydra's own partial type, which re-runs its target
    policy check on every call (~0.09 ms on a CPU); a loss or penalty called twice per training
    step paid that each time. The target was checked when the config was instantiated, and the
    function, arguments and keywords are kept, so the call computes the same value.
    """
    if isinstance(fn, functools.partial) and type(fn) is not functools.partial:
        return functools.partial(fn.func, *fn.args, **fn.keywords)
    return fn


@dataclass
class Penalty:
    """A regularizer added to the discriminator loss.

    Args:
        fn: ``fn(discriminator, real, fake, labels=..., fake_labels=...) -> scalar tensor``.
        weight: multiplier of the penalty.
        every: apply on every k-th D step only (lazy regularization, Karras et al. 2020);
            the weight is then multiplied by k so the expected gradient is unchanged.
        schedule: ``schedule(weight, progress) -> weight`` over training (e.g. R3GAN's cosine decay
            of gamma, :func:`ganforge.losses.schedules.cosine_decay`); ``None`` keeps ``weight``.
    """

    fn: Callable[..., torch.Tensor]
    weight: float = 1.0
    every: int = 1
    schedule: Callable[[float, float], float] | None = None

    def weight_at(self, progress: float) -> float:
        """The weight at ``progress`` (share of training done, 0 to 1): ``weight`` without a schedule."""
        return self.weight if self.schedule is None else self.schedule(self.weight, progress)

    def __post_init__(self) -> None:
        self.fn = plain_partial(self.fn)
        check_value("loss.penalties.*.every", self.every)
        check_value("loss.penalties.*.weight", self.weight)


@dataclass
class GANObjective:
    """What a training step optimizes.

    Args:
        d_loss: ``d_loss(real_logits, fake_logits)``.
        g_loss: ``g_loss(fake_logits, real_logits)``.
        n_critic: discriminator steps per generator step.
        g_needs_real: the G loss reads D's logits on real data (relativistic losses).
        threshold: logit above which D calls an image real, for the accuracy diagnostics;
            ``None`` uses the midpoint of the batch's mean real and fake logits
            (critics with no fixed decision boundary, such as WGAN's).
        penalties: named :class:`Penalty` objects added to the D loss (phase ``D reg``).
        g_penalties: named :class:`Penalty` objects added to the G loss (phase ``G reg``); their
            function is called as ``fn(generator, z, labels)``.
        aux_weight: weight of the auxiliary classification loss (ACGAN), added to both
            losses when the discriminator returns class logits beside its real/fake logit.
        topk_gamma: top-k training (Sinha et al. 2020): G's loss keeps only the ``k`` generated
            samples D rates most real, ``k = max(n * topk_gamma**epoch, n * topk_min_fraction)``
            of the ``n`` D outputs; 1.0 keeps all of them (off). The paper uses 0.99.
        topk_min_fraction: the floor of ``k`` as a share of the batch (the paper's nu, 0.5).
    """

    d_loss: LossFn
    g_loss: LossFn
    n_critic: int = 1
    g_needs_real: bool = False
    threshold: float | None = 0.0
    penalties: Mapping[str, Penalty] = field(default_factory=dict)
    g_penalties: Mapping[str, Penalty] = field(default_factory=dict)
    aux_weight: float = 1.0
    topk_gamma: float = 1.0
    topk_min_fraction: float = 0.5

    def __post_init__(self) -> None:
        self.d_loss, self.g_loss = plain_partial(self.d_loss), plain_partial(self.g_loss)
        for key in ("n_critic", "aux_weight", "topk_gamma", "topk_min_fraction"):
            check_value(f"loss.{key}", getattr(self, key))
        self.penalties = {name: p for name, p in (self.penalties or {}).items() if p is not None}
        self.g_penalties = {name: p for name, p in (self.g_penalties or {}).items() if p is not None}

    def topk_count(self, n: int, epoch: int) -> int:
        """How many of ``n`` generated samples (D outputs) G's loss keeps at ``epoch``."""
        if self.topk_gamma >= 1.0:
            return n
        share = max(self.topk_gamma**epoch, self.topk_min_fraction)
        return max(1, min(n, math.ceil(n * share - 1e-9)))

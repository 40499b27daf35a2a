"""The phases a GAN iteration is composed of, as stylegan2-ada's loss phases (Karras et al. 2020).

An iteration runs the discriminator's due phases, then the generator's: ``D main`` (the
adversarial loss, every iteration), ``D reg`` (one per penalty of ``loss.penalties``, lazily every
``every`` D steps), ``G main`` (every ``n_critic``-th iteration) and ``G reg`` (one per
generator-side regularizer of ``loss.g_penalties``, lazily every ``every`` G steps). The due
phases of one network add their terms into one loss and one optimizer step, so a lazy
regularizer costs nothing on the steps where it is not due. A lazy term is weighted by
``weight * every`` so its expected gradient does not depend on the interval.

Features plug into a phase rather than into the training step: augmentation sits in
:meth:`GANModule.discriminate`, which every phase uses; the auxiliary classifier (ACGAN) adds
its cross-entropy to ``D main`` and ``G main``; top-k training and the relativistic pairing
choose what ``G main``'s loss sees (:func:`ganforge.losses.adversarial.topk_select`); packing
lives in the discriminator; an augmentation with a controller (ADA) reads ``D main``'s logits
after the D step; ``reuse_fake`` decides whether ``G main`` trains on the batch D just saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ganforge.losses.adversarial import aux_class_loss, topk_select
from ganforge.losses.objective import Penalty

if TYPE_CHECKING:
    from ganforge.modules.gan import GANModule

DISCRIMINATOR, GENERATOR = "discriminator", "generator"


@dataclass
class IterationBatch:
    """What one iteration's phases share.

    Args:
        real: the real images (channels-last when the module uses it).
        labels: their classes, ``None`` for unconditional models.
        fake: the generated batch D judges, detached from G.
        fake_labels: the classes ``fake`` was generated for.
        fake_g: the same batch still attached to G's graph when ``G main`` reuses it, else ``None``.
        logs: the values the phases log.
        real_logits: ``D main``'s (detached) logits on ``real``, for diagnostics and ADA.
        fake_logits: ``D main``'s (detached) logits on ``fake``.
    """

    real: torch.Tensor
    labels: torch.Tensor | None
    fake: torch.Tensor
    fake_labels: torch.Tensor | None
    fake_g: torch.Tensor | None = None
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    real_logits: torch.Tensor | None = None
    fake_logits: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.real.shape[0]


class Phase:
    """One term of one network's loss, due on some iterations.

    Attributes:
        name: the phase's name (``D main``, ``D reg r1``, ...).
        network: ``"discriminator"`` or ``"generator"``: whose optimizer step the term joins.
    """

    name: str
    network: str

    def due(self, module: GANModule) -> bool:
        """Whether the phase runs in the current iteration (``module.iteration`` not yet advanced)."""
        return True

    def loss(self, module: GANModule, batch: IterationBatch) -> torch.Tensor:
        """The phase's term of its network's loss; logs go into ``batch.logs``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DiscriminatorMain(Phase):
    """D's adversarial loss on the real and the generated batch (plus ACGAN's class loss)."""

    name, network = "D main", DISCRIMINATOR

    def loss(self, module: GANModule, batch: IterationBatch) -> torch.Tensor:
        objective = module.objective
        real_logits, real_classes = module.discriminate(batch.real, batch.labels)
        fake_logits, fake_classes = module.discriminate(batch.fake, batch.fake_labels)
        loss = objective.d_loss(real_logits, fake_logits)
        batch.logs["train/d_loss_adv"] = loss.detach()
        if real_classes is not None:
            aux = aux_class_loss(real_classes, batch.labels) + aux_class_loss(fake_classes, batch.fake_labels)
            loss = loss + objective.aux_weight * aux
            batch.logs["train/d_loss_aux"] = aux.detach()
        batch.real_logits, batch.fake_logits = real_logits.detach(), fake_logits.detach()
        return loss


class DiscriminatorPenalty(Phase):
    """A regularizer of D (gradient penalty, R1, R2), lazily every ``penalty.every`` D steps."""

    network = DISCRIMINATOR

    def __init__(self, key: str, penalty: Penalty):
        self.key, self.penalty, self.name = key, penalty, f"D reg {key}"

    def due(self, module: GANModule) -> bool:
        return module.iteration % self.penalty.every == 0

    def loss(self, module: GANModule, batch: IterationBatch) -> torch.Tensor:
        p = self.penalty
        value = p.fn(
            module.penalty_critic, batch.real, batch.fake, labels=batch.labels, fake_labels=batch.fake_labels
        )
        batch.logs[f"train/{self.key}"] = value.detach()
        return p.weight_at(module.progress()) * p.every * value


class GeneratorMain(Phase):
    """G's adversarial loss (plus ACGAN's class loss), every ``n_critic``-th iteration."""

    name, network = "G main", GENERATOR

    def due(self, module: GANModule) -> bool:
        return module.g_step_due()

    def loss(self, module: GANModule, batch: IterationBatch) -> torch.Tensor:
        objective = module.objective
        labels = batch.fake_labels
        fake = batch.fake_g
        if fake is None:  # a fresh batch for G (reuse_fake=false)
            labels = module.sample_labels(batch.n)
            fake = module.format(module.generator(module.sample_noise(batch.n), labels))
        fake_logits, fake_classes = module.discriminate(fake, labels)
        real_logits = module.discriminate(batch.real, batch.labels)[0] if objective.g_needs_real else None
        k = objective.topk_count(len(fake_logits), module.current_epoch)
        if k < len(fake_logits):  # top-k training: G learns only from its k most realistic samples
            fake_logits, real_logits, fake_classes, labels = topk_select(
                k, fake_logits, real_logits, fake_classes, labels
            )
            batch.logs["train/topk"] = torch.tensor(float(k))
        loss = objective.g_loss(fake_logits, real_logits)
        if fake_classes is not None:
            loss = loss + objective.aux_weight * aux_class_loss(fake_classes, labels)
        return loss


class GeneratorPenalty(Phase):
    """A regularizer of G (e.g. path-length regularization), lazily every ``penalty.every`` G steps.

    The penalty's function is called as ``fn(generator, z, labels)`` on a fresh batch of latents.
    """

    network = GENERATOR

    def __init__(self, key: str, penalty: Penalty):
        self.key, self.penalty, self.name = key, penalty, f"G reg {key}"

    def due(self, module: GANModule) -> bool:
        return module.g_step_due() and module.g_steps % self.penalty.every == 0

    def loss(self, module: GANModule, batch: IterationBatch) -> torch.Tensor:
        p = self.penalty
        labels = module.sample_labels(batch.n)
        value = p.fn(module.generator, module.sample_noise(batch.n), labels)
        batch.logs[f"train/{self.key}"] = value.detach()
        return p.weight_at(module.progress()) * p.every * value


def build_phases(objective) -> list[Phase]:
    """The phases of a :class:`~ganforge.losses.objective.GANObjective`, in the order they run."""
    return [
        DiscriminatorMain(),
        *(DiscriminatorPenalty(k, p) for k, p in objective.penalties.items()),
        GeneratorMain(),
        *(GeneratorPenalty(k, p) for k, p in objective.g_penalties.items()),
    ]

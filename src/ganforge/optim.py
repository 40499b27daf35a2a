"""Learning-rate schedules used by GAN recipes."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def constant_then_linear_decay(optimizer: Optimizer, constant_epochs: int, decay_epochs: int) -> LambdaLR:
    """Keep the initial rate for ``constant_epochs``, then decay it linearly to zero over
    ``decay_epochs`` (the CycleGAN / pix2pix schedule, Zhu et al. 2017).

    Args:
        optimizer: the optimizer to schedule.
        constant_epochs: steps (epochs) at the initial rate.
        decay_epochs: steps over which the rate falls to zero.
    """
    if constant_epochs < 0 or decay_epochs < 1:
        raise ValueError(
            f"need constant_epochs >= 0 and decay_epochs >= 1; got {constant_epochs}, {decay_epochs}"
        )

    def factor(step: int) -> float:
        return 1.0 - max(0, step + 1 - constant_epochs) / float(decay_epochs + 1)

    return LambdaLR(optimizer, factor)

"""Learning-rate schedules used by GAN recipes."""

from __future__ import annotations

import functools

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


def build_gan_optimizers(optimizer_cfg: dict, g_params, d_params, allow_fused: bool = True):
    """What ``configure_optimizers`` returns for a G/D pair: the two optimizers, and their
    schedulers when ``optimizer_cfg["scheduler"]`` (a partial applied to both) is set.

    Args:
        optimizer_cfg: ``{"generator": partial, "discriminator": partial, "scheduler": partial | None}``.
        g_params: parameters of the generator(s).
        d_params: parameters of the discriminator(s).
        allow_fused: ``False`` builds an optimizer configured with ``fused=True`` unfused (the
            same update, one tensor at a time): Lightning cannot clip gradients under 16-bit AMP
            for a fused optimizer, whose step unscales them itself.
    """

    def build(partial, params):
        if not allow_fused and getattr(partial, "keywords", {}).get("fused"):
            partial = functools.partial(partial, fused=False)
        return partial(params)

    opt_g, opt_d = (
        build(optimizer_cfg["generator"], g_params),
        build(optimizer_cfg["discriminator"], d_params),
    )
    scheduler = optimizer_cfg.get("scheduler")
    if scheduler is None:
        return [opt_g, opt_d]
    return [opt_g, opt_d], [scheduler(opt_g), scheduler(opt_d)]


def step_schedulers(module, optimizer_cfg: dict, interval: str) -> None:
    """Step a module's LR schedulers when ``interval`` (``"epoch"`` or ``"iteration"``) is the
    configured ``scheduler_interval``; manual optimization leaves this to the module."""
    if optimizer_cfg.get("scheduler") is None or optimizer_cfg.get("scheduler_interval", "epoch") != interval:
        return
    for scheduler in module.lr_schedulers():
        scheduler.step()

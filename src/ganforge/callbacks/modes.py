"""Mode-collapse metrics during training, for the data that defines modes.

* 2-D mixtures (``data=ring8`` / ``grid25``): every ``every_n_epochs`` epochs, 2,500 points
  from the EMA generator give ``val/modes``, ``val/high_quality`` and ``val/kl`` (PacGAN's
  metrics, :func:`ganforge.metrics.modes.mode_stats`) and a scatter plot over the mode
  centres, ``samples/scatter_epoch_XXXX.png``.
* Stacked MNIST (``data=stacked_mnist``): 26,000 images, each channel read by the offline
  digit classifier, give ``val/modes`` and ``val/kl`` over the 1,000 digit triples, and
  ``val/modes_if_independent``, the count the per-channel digit frequencies alone would give
  (near ``val/modes``: the missing triples come from digits a channel rarely draws, not from
  channels that depend on each other).

For any other data the callback does nothing, so it sits in the default callbacks and
``data=ring8`` alone yields the right metrics. Samples come from a fixed-seed noise
generator, independent of the training RNG, so evaluating changes no training draw.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from ganforge.data.mixtures import MixtureDataModule
from ganforge.data.stacked_mnist import StackedMNISTDataModule
from ganforge.metrics.modes import mode_stats, stacked_mnist_stats
from ganforge.modules.contract import NoiseSampler, require

PROTOCOL_SAMPLES = {"mixture": 2_500, "stacked_mnist": 26_000}  # PacGAN's evaluation sizes


class ModeCoverage(Callback):
    """Logs mode counts, quality and KL to uniform; plots 2-D samples.

    Args:
        dirpath: folder for the scatter plots.
        every_n_epochs: how often to evaluate (Stacked MNIST's 26k samples cost more); the
            last epoch (``max_epochs`` or ``model.max_iters`` reached) is always evaluated.
        n_samples: samples per evaluation; ``None`` uses PacGAN's (2,500 points, 26,000 images).
        batch_size: generator batch size while sampling.
        seed: seed of the evaluation noise (the same samples' latents every time).
    """

    def __init__(
        self,
        dirpath: str,
        every_n_epochs: int = 1,
        n_samples: int | None = None,
        batch_size: int = 1000,
        seed: int = 0,
    ):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1; got {every_n_epochs}")
        self.dirpath, self.every_n_epochs, self.n_samples = Path(dirpath), every_n_epochs, n_samples
        self.batch_size, self.seed = batch_size, seed
        self._classifier = None

    @torch.no_grad()
    def _sample(self, pl_module: NoiseSampler, n: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        z = torch.randn(n, pl_module.latent_dim, generator=generator)
        chunks = [
            pl_module.generate(z[i : i + self.batch_size].to(pl_module.device)).cpu()
            for i in range(0, n, self.batch_size)
        ]
        return torch.cat(chunks)

    def _mixture(
        self, trainer: Trainer, pl_module: LightningModule, means: torch.Tensor, sigma: float
    ) -> dict:
        points = self._sample(pl_module, self.n_samples or PROTOCOL_SAMPLES["mixture"])
        stats = mode_stats(points, means, sigma)
        if trainer.is_global_zero:
            from ganforge.utils.images import save_scatter

            title = (
                f"iter {pl_module.iteration}: {stats['modes']:.0f}/{len(means)} modes, "
                f"{100 * stats['high_quality']:.1f}% high quality"
            )
            save_scatter(
                points, self.dirpath / f"scatter_epoch_{trainer.current_epoch:04d}.png", means, title
            )
        return stats

    def _stacked_mnist(self, pl_module: LightningModule) -> dict:
        from ganforge.metrics.domain import load_digit_classifier, predict_channel_digits

        if self._classifier is None:
            self._classifier = load_digit_classifier()
        classifier = self._classifier.to(pl_module.device)
        images = self._sample(pl_module, self.n_samples or PROTOCOL_SAMPLES["stacked_mnist"])
        return stacked_mnist_stats(predict_channel_digits(classifier, images))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: NoiseSampler) -> None:
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if (trainer.current_epoch + 1) % self.every_n_epochs and not (trainer.should_stop or last_epoch):
            return
        datamodule = trainer.datamodule
        if isinstance(datamodule, (MixtureDataModule, StackedMNISTDataModule)):
            require(pl_module, NoiseSampler, f"mode metrics of data '{datamodule.name}'")
        if isinstance(datamodule, MixtureDataModule):
            stats = self._mixture(trainer, pl_module, *datamodule.modes)
        elif isinstance(datamodule, StackedMNISTDataModule):
            stats = self._stacked_mnist(pl_module)
        else:
            return
        for key, value in stats.items():
            pl_module.log(f"val/{key}", float(value), on_step=False, on_epoch=True, batch_size=1)

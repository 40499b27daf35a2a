"""Sample grids from fixed noise after every epoch, by the EMA generator (optionally truncated)."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer

from ganforge.modules.contract import NoiseSampler, require
from ganforge.utils.images import image_grid, log_image, save_png, save_scatter


class SampleGrid(Callback):
    """Writes ``<dirpath>/epoch_XXXX.png`` and ``last.png`` and sends the grid to the loggers.

    Args:
        dirpath: folder for the PNG files.
        every_n_epochs: how often to draw a grid.
        truncation_psi: draw the grid with truncation psi toward the average w (generators with a
            mapping network, e.g. model=stylegan2); 1 = none.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1, truncation_psi: float = 1.0):
        self.dirpath, self.every_n_epochs = Path(dirpath), every_n_epochs
        self.truncation_psi = float(truncation_psi)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        require(
            pl_module,
            NoiseSampler,
            "noise sample grids (callbacks.samples; translation models: callbacks=image2image, "
            "or callbacks.samples=null)",
        )
        if self.truncation_psi != 1:
            from ganforge.validation import check_truncation

            check_truncation(getattr(pl_module, "generator_ema", pl_module), self.truncation_psi)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: NoiseSampler) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs and not trainer.should_stop:
            return
        if not trainer.is_global_zero:
            return
        images = (
            pl_module.fixed_samples(self.truncation_psi)
            if self.truncation_psi != 1
            else pl_module.fixed_samples()
        )
        if images.dim() == 2:  # 2-D points: a scatter plot stands in for the image grid
            save_scatter(images, self.dirpath / f"epoch_{trainer.current_epoch:04d}.png")
            save_scatter(images, self.dirpath / "last.png")
            return
        grid = image_grid(images)
        save_png(grid, self.dirpath / f"epoch_{trainer.current_epoch:04d}.png")
        save_png(grid, self.dirpath / "last.png")
        log_image(trainer, "samples/fixed_noise", grid, pl_module.iteration)

"""Translation panels of fixed held-out images after every epoch (input | translated | reconstructed)."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer

from ganforge.modules.contract import Translator, require
from ganforge.utils.images import log_image, save_png


class TranslationPanels(Callback):
    """Writes ``<dirpath>/epoch_XXXX.png`` and ``last.png`` and sends the panel to the loggers.

    Each row is one held-out image: ``A | G(A) | F(G(A)) | B | F(B) | G(F(B))`` for CycleGAN,
    ``A | G(A) | target`` for pix2pix (see :meth:`ganforge.modules.translation.TranslationScheme.panel`).

    Args:
        dirpath: folder for the PNG files.
        every_n_epochs: how often to draw a panel.
        n_images: held-out images (rows) per panel.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1, n_images: int = 8):
        self.dirpath, self.every_n_epochs, self.n_images = Path(dirpath), every_n_epochs, n_images

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        require(pl_module, Translator, "translation panels (callbacks.panels; GAN models: callbacks=default)")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Translator) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs and not trainer.should_stop:
            return
        if not trainer.is_global_zero:
            return
        panel = pl_module.panel(trainer.datamodule.held_out_batch(self.n_images))
        save_png(panel, self.dirpath / f"epoch_{trainer.current_epoch:04d}.png")
        save_png(panel, self.dirpath / "last.png")
        log_image(trainer, "samples/translation", panel, pl_module.iteration)

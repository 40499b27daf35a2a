"""Quality metrics during training: FID, KID, IS, precision/recall, ... every N epochs.

The callback is generic over training schemes: it asks the LightningModule for generated images
(``metric_fakes``) and the DataModule for real ones (``metric_reals``, ``dataset_id``), and leaves
the arithmetic to :class:`ganforge.metrics.evaluator.MetricEvaluator`. Real statistics are
computed (or read from the cache) once when fitting starts; the protocol is written to
``metrics_protocol.json``, the dashboard's hyper-parameters and every checkpoint. Values that are
not logged scalars (intra-class FID's per-class values) go to ``metrics_details.json`` and the
checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from ganforge.config import ConfigError
from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.metrics.protocol import (
    PROTOCOL_FILE,
    flat_protocol,
    protocol_record,
    with_truncation,
    write_json_atomic,
)
from ganforge.modules.contract import MetricData, Scheme, require
from ganforge.utils.instantiate import build

log = logging.getLogger("ganforge")
DETAILS_FILE = "metrics_details.json"  # the latest evaluation's values beyond the logged scalars


class QualityMetrics(Callback):
    """Evaluates the EMA generator against the real data and logs ``val/fid``, ``val/kid_mean``, ...

    Args:
        dirpath: the run folder, where ``metrics_protocol.json`` is written.
        every_n_epochs: evaluate after every N-th epoch (and after the last one).
        truncation_psi: draw the generated images with truncation psi (generators with a mapping
            network, e.g. model=stylegan2); recorded in the protocol when not 1.
        **evaluator: the arguments of :class:`MetricEvaluator` (names, extractor, n_fake, ...).
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 5, truncation_psi: float = 1.0, **evaluator: Any):
        if every_n_epochs < 1:
            raise ValueError(f"metrics.every_n_epochs must be >= 1; got {every_n_epochs}")
        self.dirpath, self.every_n_epochs = Path(dirpath), every_n_epochs
        self.truncation_psi = float(truncation_psi)
        self.evaluator = MetricEvaluator(**evaluator)  # fails here, before training, if weights are missing
        self.real: RealStatistics | None = None
        self.record: dict[str, Any] | None = None
        self.last: dict[str, float] = {}
        self.evaluated_epoch = -1  # the epoch of the latest evaluation (best.ckpt looks only then)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        require(pl_module, Scheme, "quality metrics (or use metrics=none)")
        require(datamodule, MetricData, "quality metrics (or use metrics=none)")
        if self.truncation_psi != 1:
            if not hasattr(pl_module, "metric_truncation_psi"):
                raise ConfigError(
                    f"metrics.truncation_psi={self.truncation_psi} needs a GAN with a mapping network "
                    f"(model=stylegan2); {type(pl_module).__name__} does not truncate"
                )
            from ganforge.validation import check_truncation

            check_truncation(pl_module.generator_ema, self.truncation_psi)
            pl_module.metric_truncation_psi = self.truncation_psi
        content = datamodule.content
        if content == "points":
            raise ConfigError(
                f"FID/KID/IS score images, but data '{datamodule.name}' holds 2-D points "
                "(scored by the mode metrics: val/modes, val/high_quality, val/kl); use metrics=none"
            )
        self.evaluator.check_module(pl_module)
        if self.evaluator.extractor.name == "domain" and content != "digits":
            raise ConfigError(
                f"metrics=domain uses a digit classifier, but data '{datamodule.name}' "
                f"holds {content}, not digits; use metrics=inception (or metrics=none)"
            )

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = trainer.datamodule
        datamodule.setup("fit")
        self.evaluator.to(pl_module.device)
        self.real = self.evaluator.real_statistics(
            self.evaluator.reals(datamodule),
            datamodule.dataset_id,
            write_cache=trainer.is_global_zero,
        )
        protocol = with_truncation(self.evaluator.protocol(self.real), self.truncation_psi)
        self.record = protocol_record(protocol)
        if trainer.is_global_zero:
            write_json_atomic(self.record, self.dirpath / PROTOCOL_FILE)
            self._log_protocol(trainer)
        log.info("Metrics protocol %s: %s", self.record["protocol_id"], json.dumps(self.record["protocol"]))

    def _log_protocol(self, trainer: Trainer) -> None:
        flat = flat_protocol(self.record)
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)
            if type(logger).__name__ == "TensorBoardLogger":
                text = "\n".join(f"    {k}: {v}" for k, v in sorted(self.record["protocol"].items()))
                logger.experiment.add_text("metrics/protocol", f"id {self.record['protocol_id']}\n\n{text}")

    def _due(self, trainer: Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        return epoch % self.every_n_epochs == 0 or epoch >= (trainer.max_epochs or 0) or trainer.should_stop

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._due(trainer) or self.real is None:
            return
        ev, start = self.evaluator, time.perf_counter()
        rank, world_size = trainer.global_rank, trainer.world_size
        try:
            fakes = ev.fakes(pl_module, rank, world_size, trainer.datamodule)
            self.last = ev.evaluate(fakes, self.real, rank=rank, world_size=world_size)
        except (RuntimeError, ValueError) as err:  # e.g. a diverged G's NaN images: keep the run's files
            log.warning("epoch %d: metrics could not be computed (%s)", trainer.current_epoch, err)
            return
        self.evaluated_epoch = trainer.current_epoch
        # float64 tensors: the 8-hex-digit protocol id (up to 2**32) survives exactly in metrics.csv.
        values = {k: torch.tensor(v, dtype=torch.float64) for k, v in self.last.items()}
        values["val/protocol_id"] = torch.tensor(int(self.record["protocol_id"], 16), dtype=torch.float64)
        pl_module.log_dict(values, on_step=False, on_epoch=True, sync_dist=False)
        if ev.details and trainer.is_global_zero:
            write_json_atomic(
                {"epoch": trainer.current_epoch, "protocol_id": self.record["protocol_id"], **ev.details},
                self.dirpath / DETAILS_FILE,
            )
        shown = ", ".join(f"{k[4:]} {v:.4g}" for k, v in self.last.items())
        seconds = time.perf_counter() - start
        log.info(
            "epoch %d metrics [%s] in %.2f s: %s",
            trainer.current_epoch,
            self.record["protocol_id"],
            seconds,
            shown,
        )

    def checkpoint_callbacks(self) -> list[Callback]:
        """``checkpoints/best.ckpt`` tracking the lowest FID, when FID is computed."""
        if "fid" not in self.evaluator.names:
            return []
        return [
            BestCheckpoint(
                self,
                dirpath=str(self.dirpath / "checkpoints"),
                filename="best",
                monitor="val/fid",
                mode="min",
                save_top_k=1,
                save_on_train_epoch_end=True,  # FID is logged at the end of training epochs
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        ]

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        if self.record is not None:
            checkpoint.setdefault("ganforge", {})["metrics_protocol"] = self.record
            checkpoint["ganforge"]["metrics"] = dict(self.last)
            if self.evaluator.details:
                checkpoint["ganforge"]["metrics_details"] = dict(self.evaluator.details)


def build_metric_callbacks(node: Any) -> list[Callback]:
    """The metrics callback of a ``metrics`` config node and its ``best.ckpt`` companion.

    Instantiated before ``fit``, so a missing weights file stops the run before training; the
    user's error (for instance :class:`InceptionWeightsMissing`) surfaces unwrapped from Hydra's.
    """
    if not node or "_target_" not in node:
        return []  # metrics=none (an experiment's metrics.* settings then have nothing to configure)
    quality = build(node, "metrics", _convert_="all")
    return [quality, *quality.checkpoint_callbacks()]


class BestCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` on ``val/fid`` that looks only in epochs where the metrics ran.

    Args:
        quality: the metrics callback whose results it monitors.
        **kwargs: ``ModelCheckpoint`` arguments.
    """

    def __init__(self, quality: QualityMetrics, **kwargs: Any):
        super().__init__(**kwargs)
        self.quality = quality

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.quality.evaluated_epoch == trainer.current_epoch:
            super().on_train_epoch_end(trainer, pl_module)

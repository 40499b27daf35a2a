"""The run's resolved config as hyperparameters in every logger, with its metrics in TensorBoard's HPARAMS view.

At the start of training the loggers receive the resolved config (the W&B run config). TensorBoard's HPARAMS tab compares runs only through metric
tags declared next to the hyperparameters, and the names of the metrics are known only
once they have been logged: at the end of training the hyperparameters are written with
every scalar ``train/*``/``val/*`` metric the run logged. The tab then reads each metric's
last value from the run's own scalar series (no extra point is logged).
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer

from ganforge.modules.contract import Scheme, require


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists and ``None`` become strings (TensorBoard takes scalars only)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class LogHyperparameters(Callback):
    """Sends ``pl_module.run_config`` (the resolved config) to the loggers as hyperparameters.

    Args:
        metric_prefixes: logged keys declared as HPARAMS metrics in TensorBoard.
    """

    def __init__(self, metric_prefixes: tuple[str, ...] | list[str] = ("val/", "train/", "test/")):
        self.metric_prefixes = tuple(metric_prefixes)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        require(pl_module, Scheme, "the hyperparameters callback (callbacks.hparams)")

    @staticmethod
    def _config(pl_module: Scheme) -> dict:
        return pl_module.run_config or {}

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        config = self._config(pl_module)
        if not config or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            # TensorBoard gets them with its metrics at the end; the CSV run folder has config.yaml already.
            if type(logger).__name__ not in ("TensorBoardLogger", "CSVLogger"):
                logger.log_hyperparams(config)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        config = self._config(pl_module)
        if not config or not trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(self.metric_prefixes) and v.numel() == 1
        }
        for logger in trainer.loggers:
            if type(logger).__name__ == "TensorBoardLogger" and metrics:
                write_tensorboard_hparams(logger.experiment, flatten(config), metrics)


def write_tensorboard_hparams(writer, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Write the HPARAMS summaries into ``writer``'s own event file (not a sub-run, unlike ``add_hparams``).

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``.
        params: flat hyperparameters (scalars and strings).
        metrics: names of the scalar series the HPARAMS tab shows (the values are read from the series).
    """
    from torch.utils.tensorboard.summary import hparams

    experiment, session_start, session_end = hparams(params, metrics)
    file_writer = writer._get_file_writer()
    for summary in (experiment, session_start, session_end):
        file_writer.add_summary(summary)
    writer.flush()

"""Hyperparameters and final/best metrics in the loggers, in the shape dashboards compare runs by.

- W&B (and any logger other than TensorBoard and CSV) gets the whole resolved config at the start
  of training (the W&B run config); at the end its run summary gets the final value and
  ``best/<metric>`` of each validation metric with a better direction.
- TensorBoard gets the resolved config as text (TEXT tab) with the run folder at the start,
  and at the end its HPARAMS summaries: the swept keys, then a short curated set
  (:func:`~ganforge.loggers.naming.comparison_hparams`), then the comparison metrics, each
  final (its own series' last value) and best (a ``best/<metric>`` scalar logged at the end).
  The whole config stays in ``config.yaml``, the checkpoint and the TEXT tab.

The best values are tracked over the run's evaluations and saved with the callback's state in
every checkpoint, so a resumed run keeps the best value reached before it stopped.
"""

from __future__ import annotations

import math
from fnmatch import fnmatch
from typing import Any

import yaml
from pytorch_lightning import Callback, LightningModule, Trainer

from ganforge.loggers.naming import (
    COMPARISON_METRICS,
    comparison_hparams,
    hydra_config,
    is_multirun,
    swept_keys,
)
from ganforge.modules.contract import Scheme, require

BEST_PREFIX = "best/"


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


def _goal(name: str) -> str | None:
    from ganforge.reporting.summary import metric_goal  # the report's direction rule, one place

    return metric_goal(name)


class LogHyperparameters(Callback):
    """Sends the run's hyperparameters and its final and best metrics to the loggers.

    Args:
        metric_prefixes: logged keys whose best value is tracked (those with a better direction).
        metrics: glob patterns of the HPARAMS metrics, in column order (default
            :data:`COMPARISON_METRICS`); where the run logged none of them, its tracked metrics.
    """

    def __init__(
        self,
        metric_prefixes: tuple[str, ...] | list[str] = ("val/", "test/"),
        metrics: tuple[str, ...] | list[str] = COMPARISON_METRICS,
    ):
        self.metric_prefixes = tuple(p for p in metric_prefixes if p != "train/")  # losses have no best
        self.metrics = tuple(metrics)
        self.best: dict[str, float] = {}
        self._trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        require(pl_module, Scheme, "the hyperparameters callback (callbacks.hparams)")
        self._trainer = trainer

    @staticmethod
    def _config(pl_module: Scheme) -> dict:
        return pl_module.run_config or {}

    def _tracked(self, trainer: Trainer) -> dict[str, float]:
        """The latest value of every scalar metric under :attr:`metric_prefixes` with a better direction."""
        return {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(self.metric_prefixes) and v.numel() == 1 and _goal(k)
        }

    def update_best(self, trainer: Trainer) -> None:
        """Fold the latest metric values into :attr:`best` (NaN never wins)."""
        for name, value in self._tracked(trainer).items():
            if not math.isfinite(value):
                continue
            old = self.best.get(name)
            better = min if _goal(name) == "min" else max
            self.best[name] = value if old is None else better(old, value)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.update_best(trainer)  # the previous epoch's evaluations (metric callbacks log after this one)

    def state_dict(self) -> dict[str, Any]:
        if self._trainer is not None:
            self.update_best(self._trainer)  # checkpoints are written after the epoch's metrics
        return {"best": dict(self.best)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        config = self._config(pl_module)
        if not config or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            kind = type(logger).__name__
            if kind == "TensorBoardLogger":
                run_dir = getattr(logger, "run_dir", None) or (config.get("paths") or {}).get("output_dir")
                text = f"Run folder: `{run_dir}`\n\n```yaml\n{yaml.safe_dump(config, sort_keys=False)}```"
                logger.experiment.add_text("config", text.replace("\n", "  \n"), global_step=0)
            elif kind != "CSVLogger":  # the CSV run folder has config.yaml already
                logger.log_hyperparams(config)

    def comparison_metrics(self, logged: dict[str, float]) -> list[str]:
        """The HPARAMS metrics: logged names matching :attr:`metrics` in pattern order, else every tracked one."""
        chosen: list[str] = []
        for pattern in self.metrics:
            chosen += sorted(n for n in logged if fnmatch(n, pattern) and n not in chosen)
        return chosen or sorted(logged)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        config = self._config(pl_module)
        if not config or not trainer.is_global_zero:
            return
        self.update_best(trainer)
        final = self._tracked(trainer)
        best = {f"{BEST_PREFIX}{k}": v for k, v in self.best.items() if k in final}
        step = int(getattr(pl_module, "iteration", trainer.global_step))
        for logger in trainer.loggers:
            kind = type(logger).__name__
            if kind == "TensorBoardLogger":
                names = self.comparison_metrics(final)
                shown = [m for n in names for m in (n, BEST_PREFIX + n) if m in final or m in best]
                logger.log_metrics({k: v for k, v in best.items() if k in shown}, step=step)
                params = comparison_hparams(config)
                swept = swept_keys(hydra_config()) if is_multirun(hydra_config()) else []
                write_tensorboard_hparams(logger.experiment, params, dict.fromkeys(shown, 0.0), swept)
            elif kind == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
                summary = logger.experiment.summary
                summary.update({**final, **best})


def write_tensorboard_hparams(
    writer, params: dict[str, Any], metrics: dict[str, float], differs: list[str] | tuple[str, ...] = ()
) -> None:
    """Write the HPARAMS summaries into ``writer``'s own event file (not a sub-run, unlike ``add_hparams``).

    TensorBoard's hparams plugin lists hyperparameters marked as differing between runs first,
    each part by name; metrics keep the order given.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``.
        params: flat hyperparameters (scalars and strings).
        metrics: names of the scalar series the HPARAMS tab shows (the values are read from the series).
        differs: the keys marked as differing (a sweep's swept keys), listed first.
    """
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams

    experiment, session_start, session_end = hparams(params, metrics)
    metadata = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(metadata.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in differs
    metadata.content = data.SerializeToString()
    file_writer = writer._get_file_writer()
    for summary in (experiment, session_start, session_end):
        file_writer.add_summary(summary)
    writer.flush()

"""``ganforge-train``: compose the config, build data, module, callbacks, loggers and trainer, fit.

Usage:
    ganforge-train experiment=dcgan_mnist5k
    ganforge-train model=dcgan data=digits loss=hinge optimizer.generator.lr=1e-4 seed=3
    ganforge-train -m loss=ns,hinge seed=0,1,2
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

from ganforge.callbacks.divergence import DivergenceError
from ganforge.callbacks.metrics import build_metric_callbacks
from ganforge.config import (
    CONF_DIR,
    ConfigError,
    precheck_overrides,
    resolved_container,
    save_resolved,
    validate_config,
)
from ganforge.data.transforms import ImageLoadError
from ganforge.modules.contract import Scheme, require
from ganforge.sweep import resumable_job
from ganforge.utils.checkpoint import CheckpointError, resolve_ckpt_path
from ganforge.utils.checkpoint_io import AtomicCheckpointIO
from ganforge.utils.instantiate import build

# Errors that are the user's to fix: shown as one message, without a traceback.
USER_ERRORS = (
    ConfigError,
    CheckpointError,
    DivergenceError,
    ImageLoadError,
    FileNotFoundError,
    PermissionError,
)

log = logging.getLogger("ganforge")
# The run folder already holds config.yaml when the CSV logger starts; it only ever replaces metrics.csv.
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
# The EMA generator (and any frozen metric network) is in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
# Lightning's own use of a torch pytree API that torch has deprecated: nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def drop_nvml_cuda_check_without_nvml() -> bool:
    """Undo Lightning's ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` where the NVML library is missing.

    Lightning sets it on import so that asking whether a GPU exists does not initialise CUDA in
    a process that may fork. Without NVML, torch falls back to the CUDA runtime check anyway,
    after failing to load NVML again on every call, and every torch optimizer step asks: on a
    CPU-only machine ~0.2 ms per optimizer step, two per GAN iteration (~7 % of a ~5.5 ms 2-D
    mixture iteration on one thread). Returns whether the setting was dropped.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
        return True
    return False


drop_nvml_cuda_check_without_nvml()


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The configured loggers, plus the CSV logger that writes ``metrics.csv`` if none is configured."""
    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items() if node]
    if not any(isinstance(lg, CSVLogger) for lg in loggers):
        loggers.insert(0, CSVLogger(save_dir=str(run_dir), name="", version=""))
    return loggers


def build_module(cfg: DictConfig, datamodule: pl.LightningDataModule | None) -> pl.LightningModule:
    """Instantiate the training scheme named by ``model._target_`` with its networks, loss and optimizers."""
    module = build(cfg.model, "model", loss=cfg.loss, optimizer=cfg.optimizer, _convert_="all")
    module.run_config = resolved_container(cfg)
    if datamodule is not None:
        check_compatible(module, datamodule)
    return module


def check_compatible(module: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
    """Reject model/data pairs that cannot train together, before training starts."""
    require(module, Scheme, "ganforge-train")
    module.check_compatible(datamodule)
    datamodule.setup("fit")  # a missing or unreadable data set stops here, before the trainer is built


def prepare_run_dir(run_dir: Path) -> None:
    """Create the run folder and make sure it is writable, before any training."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write to the run folder {run_dir}: {err.strerror or err}") from err


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job from a composed config; returns the final logged metrics."""
    validate_config(cfg)
    run_dir = Path(cfg.paths.output_dir)
    prepare_run_dir(run_dir)
    pl.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank == 0:  # DDP relaunches this script once per extra process
        save_resolved(cfg, run_dir / "config.yaml")

    datamodule = build(cfg.data, "data")
    module = build_module(cfg, datamodule)
    callbacks = [
        build(node, f"callbacks.{name}") for name, node in (cfg.get("callbacks") or {}).items() if node
    ]
    callbacks += build_metric_callbacks(cfg.get("metrics"))  # fails here, before fit, without weights
    extra = {}
    # `~callbacks.progress_bar` means no bar, not Lightning's default one.
    if "enable_progress_bar" not in cfg.trainer and not any(isinstance(c, ProgressBar) for c in callbacks):
        extra["enable_progress_bar"] = False
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=build_loggers(cfg, run_dir),
        plugins=[AtomicCheckpointIO()],
        **extra,
    )

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), outputs_root=Path(cfg.paths.outputs_root) / cfg.name)
    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("Run folder: %s", run_dir)
    return metrics


def objective_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweeper (Optuna) optimizes: the final logged value of ``optimized_metric``.

    Raises:
        ConfigError: ``name`` was never logged by this run (a typo, or a metric that is not
            configured): failing loudly beats optimizing a placeholder.
        DivergenceError: the value is NaN. Raised rather than returned: the Optuna sweeper
            then records a failed trial, whereas a returned NaN ends the whole search.
    """
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name} was not logged by this run; logged metrics: {', '.join(sorted(metrics))}"
        )
    if math.isnan(metrics[name]):
        raise DivergenceError(f"optimized_metric={name} is NaN at the end of training")
    return metrics[name]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        return resumable_job(cfg, lambda: objective_value(train(cfg), cfg.get("optimized_metric")))
    except USER_ERRORS as err:
        log.error("%s", err)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra marks this job failed and the sweep goes on with the others
        print(f"ganforge-train: {err}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Console entry point: check the overrides, then hand over to Hydra."""
    error = precheck_overrides(sys.argv[1:])
    if error:
        print(f"ganforge-train: {error}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()

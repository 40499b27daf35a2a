"""``ganforge-train``: compose the config, build data, module, callbacks, loggers and trainer, fit.

Usage:
    ganforge-train experiment=dcgan_mnist5k
    ganforge-train model=dcgan data=digits loss=hinge optimizer.generator.lr=1e-4 seed=3
    ganforge-train -m loss=ns,hinge seed=0,1,2
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger

from ganforge.config import CONF_DIR, precheck_overrides, resolved_container, save_resolved
from ganforge.utils.checkpoint import resolve_ckpt_path

log = logging.getLogger("ganforge")
# The run folder already holds config.yaml when the CSV logger starts; it only ever replaces metrics.csv.
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The configured loggers, plus the CSV logger that writes ``metrics.csv`` if none is configured."""
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values() if node]
    if not any(isinstance(lg, CSVLogger) for lg in loggers):
        loggers.insert(0, CSVLogger(save_dir=str(run_dir), name="", version=""))
    return loggers


def build_module(cfg: DictConfig, datamodule: pl.LightningDataModule) -> pl.LightningModule:
    """Instantiate the training scheme named by ``model._target_`` with its networks, loss and optimizers."""
    module = instantiate(cfg.model, loss=cfg.loss, optimizer=cfg.optimizer, _convert_="all")
    module.run_config = resolved_container(cfg)
    return module


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job from a composed config; returns the final logged metrics."""
    run_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    save_resolved(cfg, run_dir / "config.yaml")

    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg, run_dir))

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), outputs_root=Path(cfg.paths.outputs_root) / cfg.name)
    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("Run folder: %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


def main() -> None:
    """Console entry point: check the overrides, then hand over to Hydra."""
    error = precheck_overrides(sys.argv[1:])
    if error:
        print(f"ganforge-train: {error}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()

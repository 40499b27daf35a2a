"""Shared fixtures: compose the real config, then shrink it to CPU, tiny widths and few steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from ganforge.config import compose_config

os.environ.setdefault("WANDB_MODE", "disabled")

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # One pytest worker per core (`make test`): each worker, and the training processes its tests
    # start, gets its share of the cores instead of every worker using all of them at once.
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Overrides that make any generation run take seconds on a CPU.
TINY = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",  # ++: also when an experiment sets it
    "++trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "data.batch_size=8",
    "logger=[csv]",
    "~callbacks.progress_bar",
    "metrics=none",  # quality metrics cost seconds; tests/test_metrics.py turns them on where tested
]


# Unpaired translation at 16 px with 4-channel networks (CycleGAN, CUT): D of two stride-2 layers,
# since a 16 px image leaves 1x1 maps after three.
TINY_UNPAIRED = [
    "data=digits2mnist",
    "data.img_size=16",
    "data.load_size=16",
    "model.generator.width=4",
    "model.generator.n_blocks=1",
    "model.discriminator.width=4",
    "model.discriminator.n_layers=2",
    "optimizer=adam_linear_decay",
    "callbacks=image2image",
    "callbacks.panels.n_images=2",
]


def compose_tiny(
    tmp_path: Path, overrides: list[str] | None = None, config_name: str = "train"
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with tiny settings and the run folder under ``tmp_path``."""
    cfg = compose_config([*TINY, *(overrides or [])], config_name)
    run_dir = tmp_path / "run"
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.outputs_root = str(tmp_path / "outputs")
        cfg.hydra.runtime.output_dir = str(run_dir)
        if "model" in cfg and "generator" in cfg.model and "width" in cfg.model.generator:
            cfg.model.generator.width = min(cfg.model.generator.width, 8)
        if "model" in cfg and "discriminator" in cfg.model and "width" in cfg.model.discriminator:
            cfg.model.discriminator.width = min(cfg.model.discriminator.width, 8)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path):
    """A factory: ``tiny_cfg(["data=digits", ...])`` returns a composed, shrunk config."""

    def make(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
        return compose_tiny(tmp_path, overrides, config_name)

    return make


def conf_options(group: str) -> list[str]:
    """Every option of a config group, by file name."""
    root = Path(__file__).resolve().parents[1] / "conf" / group
    return sorted(p.stem for p in root.glob("*.yaml"))


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)

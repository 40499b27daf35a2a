"""Every option of every config group composes and instantiates; bad keys fail with the valid ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import open_dict

from ganforge.config import ConfigError, precheck_overrides
from ganforge.train import build_loggers, build_module
from tests.conftest import conf_options

TORCHVISION_SETS = {"mnist", "fashion_mnist", "cifar10"}


@pytest.mark.parametrize("option", conf_options("data"))
def test_every_data_option_instantiates(tiny_cfg, tmp_path, option):
    overrides = [f"data={option}"]
    if option == "image_folder":
        from tests.helpers import write_images

        overrides.append(f"data.root={write_images(tmp_path / 'imgs', n=4)}")
    if option == "stream":  # shards written by ganforge-prepare from a folder
        from ganforge.prepare import prepare
        from tests.helpers import write_images

        shards = tmp_path / "shards"
        prepare(
            write_images(tmp_path / "imgs", n=20), shards, img_size=32, channels=1, workers=1, progress=False
        )
        overrides += [f"data.input_dir={shards}", "data.img_size=32", "data.channels=1"]
    cfg = tiny_cfg(overrides)
    if hasattr(get_class(cfg.data._target_), "paired"):
        return  # two-domain translation data: its batches are checked in test_image2image.py
    datamodule = instantiate(cfg.data)
    if option in TORCHVISION_SETS:
        return  # their files are not on this machine; see test_data.py for the offline message
    datamodule.setup("fit")
    # what the training step sees: after the data module's batch hook (streams convert uint8 batches there)
    images, labels = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    if images.dim() == 2:  # 2-D points (ring8, grid25): raw coordinates, not [-1, 1] images
        assert images.shape == (cfg.data.batch_size, 2)
    else:
        assert images.shape[1:] == (cfg.data.channels, cfg.data.img_size, cfg.data.img_size)
        assert images.min() >= -1 and images.max() <= 1
    assert labels.dtype.is_floating_point is False


@pytest.mark.parametrize("group", ["model", "loss", "optimizer"])
def test_every_module_option_instantiates(tiny_cfg, group):
    for option in conf_options(group):
        cfg = tiny_cfg([f"{group}={option}"])
        if cfg.model._target_ != "ganforge.modules.gan.GANModule":
            continue  # other schemes have their own tests
        if cfg.loss._target_.endswith(("TranslationObjective", "CUTObjective")):
            with pytest.raises(
                ConfigError, match="GAN models need a GAN loss .* which trains model=(cyclegan|cut)"
            ):
                build_module(cfg, None)
            continue
        module = build_module(cfg, None)
        optimizers = module.configure_optimizers()
        assert optimizers, option


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks"])
def test_every_run_option_instantiates(tiny_cfg, tmp_path, group):
    for option in conf_options(group):
        if group == "trainer" and option == "gpu":
            continue  # needs CUDA
        cfg = tiny_cfg([f"{group}={option}"] if group != "logger" else [f"logger=[{option}]"])
        if group == "trainer":
            with open_dict(cfg):
                cfg.trainer.accelerator = "cpu"
            instantiate(cfg.trainer)
        elif group == "logger":
            assert build_loggers(cfg, tmp_path)
        else:
            assert all(instantiate(node) for node in cfg.callbacks.values() if node)


def test_every_experiment_composes(tiny_cfg):
    for option in conf_options("experiment"):
        cfg = tiny_cfg([f"experiment={option}"])
        assert cfg.name == option


def test_typo_key_lists_valid_keys():
    message = precheck_overrides(["optimizer.generator.lrr=1e-4"])
    assert "optimizer.generator.lrr" in message
    assert "lr" in message.split("Valid keys")[1] and "betas" in message


def test_unknown_group_option_lists_choices():
    message = precheck_overrides(["model=dcgn"])
    assert "dcgn" in message and "dcgan" in message


def test_valid_overrides_pass():
    assert precheck_overrides(["data=digits", "loss=hinge", "optimizer.generator.lr=1e-4", "seed=3"]) is None


def test_cli_rejects_typo_before_training(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ganforge.train", "model.generator.widht=8", f"paths.outputs_root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Valid keys at model.generator" in proc.stderr and "width" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was trained or written


def test_a_bad_callback_or_logger_value_is_one_message_naming_the_node(tiny_cfg):
    from ganforge.train import train

    with pytest.raises(ConfigError, match="callbacks.divergence: divergence check_every must be >= 1; got 0"):
        train(tiny_cfg(["callbacks.divergence.check_every=0"]))

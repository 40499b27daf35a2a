"""A few training steps end to end: outputs, resume, generate from a checkpoint."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganforge.generate import generate
from ganforge.generate import main as generate_main
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint
from tests.helpers import write_images


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=mnist5k"],
        ["data=digits", "loss=hinge", "optimizer=ttur"],
        ["data=mnist5k", "data.img_size=32", "data.channels=3", "loss=lsgan"],
        ["data=image_folder", "data.img_size=16", "loss=minimax"],
    ],
    ids=["mnist5k", "digits-hinge-ttur", "mnist5k-32px-rgb", "folder-16px"],
)
def test_training_steps_write_outputs(tiny_cfg, tmp_path, overrides):
    if "data=image_folder" in overrides:
        overrides = [*overrides, f"data.root={write_images(tmp_path / 'imgs', n=20, size=24)}"]
    cfg = tiny_cfg(overrides)
    metrics = train(cfg)
    run = tmp_path / "run"
    assert np.isfinite(metrics["train/d_loss"]) and np.isfinite(metrics["train/g_loss"])
    for name in (
        "config.yaml",
        "checkpoints/last.ckpt",
        "samples/epoch_0000.png",
        "samples/last.png",
        "metrics.csv",
    ):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert {"train/d_loss", "train/d_acc_real", "train/d_acc_fake", "train/d_real", "train/d_fake"} <= set(
        rows[0]
    )
    ckpt = load_checkpoint(run / "checkpoints/last.ckpt")
    assert (
        ckpt["ganforge"]["iteration"] == 2
        and ckpt["ganforge"]["config"]["data"]["img_size"] == cfg.data.img_size
    )


def test_n_critic_counts_generator_steps(tiny_cfg):
    cfg = tiny_cfg(["loss.n_critic=2", "trainer.limit_train_batches=4"])
    train(cfg)
    state = load_checkpoint(cfg.paths.output_dir + "/checkpoints/last.ckpt")["ganforge"]
    assert (state["iteration"], state["g_steps"]) == (4, 2)


def test_max_iters_stops_training(tiny_cfg):
    cfg = tiny_cfg(["trainer.limit_train_batches=10", "trainer.max_epochs=5", "model.max_iters=3"])
    train(cfg)
    assert load_checkpoint(cfg.paths.output_dir + "/checkpoints/last.ckpt")["ganforge"]["iteration"] == 3


def test_resume_restores_counters_optimizers_and_ema(tiny_cfg, tmp_path):
    first = tiny_cfg([])
    train(first)
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = load_checkpoint(ckpt_path)

    captured = {}

    from pytorch_lightning import Callback

    class Capture(Callback):
        def on_train_start(self, trainer, module):
            captured["iteration"] = module.iteration
            captured["epoch"] = trainer.current_epoch
            captured["ema"] = {k: v.clone() for k, v in module.generator_ema.state_dict().items()}
            captured["opt_d"] = copy.deepcopy(trainer.optimizers[1].state_dict())

    from ganforge import train as train_module

    second = tiny_cfg(["trainer.max_epochs=2", f"ckpt_path={ckpt_path}"])
    original = train_module.instantiate

    def instantiate_with_capture(node, *args, **kwargs):
        obj = original(node, *args, **kwargs)
        if kwargs.get("callbacks") is not None:
            obj.callbacks.append(Capture())
        return obj

    train_module.instantiate = instantiate_with_capture
    try:
        train(second)
    finally:
        train_module.instantiate = original
    assert captured["iteration"] == saved["ganforge"]["iteration"] == 2
    assert captured["epoch"] == 1
    for key, value in captured["ema"].items():
        torch.testing.assert_close(value, saved["state_dict"][f"generator_ema.{key}"], rtol=0, atol=0)
    saved_d = saved["optimizer_states"][1]["state"]
    for idx, state in captured["opt_d"]["state"].items():
        torch.testing.assert_close(state["exp_avg"], saved_d[idx]["exp_avg"], rtol=0, atol=0)
    resumed = load_checkpoint(second.paths.output_dir + "/checkpoints/last.ckpt")
    assert resumed["ganforge"]["iteration"] == 4 and resumed["epoch"] == 1  # index of the last finished epoch


def test_generate_is_reproducible_and_writes_files(tiny_cfg, tmp_path):
    cfg = tiny_cfg([])
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    a, config = generate(ckpt, n=5, seed=7)
    b, _ = generate(ckpt, n=5, seed=7)
    c, _ = generate(ckpt, n=5, seed=8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert a.shape == (5, 1, cfg.data.img_size, cfg.data.img_size)
    generate_main([f"ckpt={ckpt}", "n=5", f"out={tmp_path / 'gen'}", "seed=7"])
    np.testing.assert_array_equal(np.load(tmp_path / "gen" / "samples.npy"), a.numpy())
    assert (tmp_path / "gen" / "grid.png").is_file() and (tmp_path / "gen" / "00004.png").is_file()
    with pytest.raises(ValueError, match="unconditional"):
        generate(ckpt, n=2, label=3)


@pytest.mark.slow
def test_cli_train_then_generate(tmp_path):
    """The console scripts as a user runs them, in a subprocess."""
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    run = subprocess.run(
        [
            str(bin_dir / "ganforge-train"),
            "data=digits",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3",
            "data.batch_size=8",
            "model.generator.width=8",
            "model.discriminator.width=8",
            f"paths.outputs_root={tmp_path}",
            "name=cli",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    ckpts = list(tmp_path.glob("cli/*/checkpoints/last.ckpt"))
    assert len(ckpts) == 1 and (ckpts[0].parents[1] / "tensorboard").is_dir()
    gen = subprocess.run(
        [str(bin_dir / "ganforge-generate"), f"ckpt={ckpts[0]}", "n=4", f"out={tmp_path / 'g'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gen.returncode == 0, gen.stderr
    assert np.load(tmp_path / "g" / "samples.npy").shape == (4, 1, 32, 32)

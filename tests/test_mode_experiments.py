"""Every model x loss of the mode-collapse experiments trains a few steps and logs its metrics."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ganforge.callbacks.modes import ModeCoverage
from ganforge.config import compose_config
from ganforge.generate import generate, write_samples
from ganforge.train import train


def _rows(run) -> list[dict]:
    return list(csv.DictReader(open(run / "metrics.csv")))


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=mode_collapse_ring8"],
        ["experiment=mode_collapse_grid25", "model.discriminator.pack=4"],
        ["experiment=mode_collapse_ring8", "data.batch_size=12", "model.discriminator.pack=3", "loss=hinge"],
    ],
    ids=["ring8-gan", "grid25-pac4", "ring8-pac3-hinge"],
)
def test_mode_collapse_experiment_trains_and_logs_mode_metrics(tiny_cfg, tmp_path, overrides):
    cfg = tiny_cfg(overrides)
    metrics = train(cfg)
    run = tmp_path / "run"
    assert np.isfinite(metrics["train/d_loss"]) and np.isfinite(metrics["train/g_loss"])
    k = 8 if "ring8" in overrides[0] else 25
    assert 0 <= metrics["val/modes"] <= k and 0 <= metrics["val/high_quality"] <= 1
    assert (run / "samples/scatter_epoch_0000.png").is_file() and (run / "samples/last.png").is_file()
    logged = [r for r in _rows(run) if r.get("val/modes")]
    assert len(logged) == 1 and float(logged[0]["val/modes"]) == metrics["val/modes"]
    # A checkpoint alone gives 2-D samples: samples.npy (n, 2) and a scatter plot.
    samples, _ = generate(run / "checkpoints/last.ckpt", n=50)
    out = write_samples(samples, tmp_path / "gen")
    assert np.load(out / "samples.npy").shape == (50, 2) and (out / "grid.png").is_file()


@pytest.mark.parametrize("name", ["mode_collapse_ring8", "mode_collapse_grid25"])
def test_mode_collapse_experiments_drop_the_default_image_metrics(name):
    """The root default (digit FID/KID) refuses 2-D points at setup, so the experiments must
    switch it off themselves; the tests' tiny configs hide this by always adding metrics=none."""
    cfg = compose_config([f"experiment={name}"])
    assert "_target_" not in (cfg.get("metrics") or {})
    assert cfg.data.mixture == name.rsplit("_", 1)[1] and cfg.model.max_iters > 0


def test_stacked_mnist_experiment_trains_packed_dcgan_and_counts_modes(tiny_cfg, tmp_path):
    cfg = tiny_cfg(["experiment=stacked_mnist", "model.discriminator.pack=2", "data.n_images=64"])
    cfg.callbacks.modes.n_samples = 200  # the protocol's 26,000 take minutes on a CPU
    metrics = train(cfg)
    assert np.isfinite(metrics["train/d_loss"])
    assert 1 <= metrics["val/modes"] <= 200 and 0 <= metrics["val/kl"] <= np.log(1000) + 1e-6
    assert 1 <= metrics["val/modes_if_independent"] <= 200  # at most one triple per sample either way
    assert (tmp_path / "run/samples/epoch_0000.png").is_file()


def test_mode_callback_scores_a_perfect_generator():
    """A generator that outputs the mode centres scores every mode at 100 % quality and KL 0."""
    from types import SimpleNamespace

    from ganforge.data.mixtures import MixtureDataModule

    dm = MixtureDataModule("grid25", n_points=10)
    means, sigma = dm.modes

    class Perfect:
        latent_dim, iteration, device = 1, 0, torch.device("cpu")
        logged: dict = {}

        def generate(self, z):
            return means[torch.arange(len(z)) % 25]

        def log(self, key, value, **kwargs):
            self.logged[key] = value

    callback = ModeCoverage(dirpath="unused", n_samples=2500)
    module = Perfect()
    stats = callback._mixture(SimpleNamespace(is_global_zero=False), module, means, sigma)
    assert stats == {"modes": 25.0, "high_quality": 1.0, "kl": pytest.approx(0.0)}


def test_mode_callback_skips_epochs_but_always_scores_the_last(tmp_path):
    from types import SimpleNamespace

    from ganforge.data.mixtures import MixtureDataModule

    dm = MixtureDataModule("ring8", n_points=10)
    means, _ = dm.modes
    logged = []
    module = SimpleNamespace(  # what the callback reads: a NoiseSampler, its iteration and log
        latent_dim=1,
        num_classes=0,
        iteration=0,
        device=torch.device("cpu"),
        generate=lambda z: means[torch.arange(len(z)) % 8],
        fixed_samples=lambda: means,
        log=lambda key, value, **kw: logged.append((key, value)),
    )
    callback = ModeCoverage(dirpath=str(tmp_path), every_n_epochs=2, n_samples=80)

    def end_epoch(epoch: int, max_epochs: int, should_stop: bool = False) -> None:
        trainer = SimpleNamespace(
            current_epoch=epoch,
            max_epochs=max_epochs,
            should_stop=should_stop,
            datamodule=dm,
            is_global_zero=True,
        )
        callback.on_train_epoch_end(trainer, module)

    end_epoch(0, max_epochs=5)
    assert logged == []
    end_epoch(1, max_epochs=5)
    assert ("val/modes", 8.0) in logged and (tmp_path / "scatter_epoch_0001.png").is_file()
    logged.clear()
    end_epoch(2, max_epochs=5, should_stop=True)  # model.max_iters reached mid-schedule
    end_epoch(4, max_epochs=5)  # the last epoch
    assert [k for k, _ in logged].count("val/modes") == 2

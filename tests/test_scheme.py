"""The training-scheme contract: a new scheme trains with every default callback; the GAN step's phases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from ganforge.config import ConfigError
from ganforge.losses.objective import GANObjective, Penalty
from ganforge.losses.schedules import cosine_decay
from ganforge.modules.contract import NoiseSampler, Scheme, Translator
from ganforge.modules.phases import DiscriminatorMain, DiscriminatorPenalty, GeneratorMain, GeneratorPenalty
from ganforge.train import build_module, train
from ganforge.utils.checkpoint import load_checkpoint
from tests.helpers import bare_trainer

SCHEMES = Path(__file__).parent / "schemes"


def test_a_new_scheme_is_one_module_and_one_yaml_and_trains_with_every_default_callback(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        [
            "loss=lsgan",
            "metrics=domain",
            "metrics.n_fake=64",
            "metrics.names=[fid,kid]",
            "metrics.kid_subset_size=32",
        ]
    )
    with open_dict(cfg):
        cfg.model = OmegaConf.load(SCHEMES / "minimal.yaml")
        # every default callback, the progress bar included (the tiny settings drop it)
        cfg.callbacks.progress_bar = OmegaConf.create(
            {"_target_": "pytorch_lightning.callbacks.RichProgressBar"}
        )
    assert {"last_checkpoint", "samples", "modes", "progress_bar", "divergence", "hparams"} <= set(
        cfg.callbacks
    )
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert torch.isfinite(torch.tensor(metrics["train/d_loss"])) and "val/fid" in metrics
    ckpt = load_checkpoint(run / "checkpoints/last.ckpt")["ganforge"]
    assert (ckpt["scheme"], ckpt["iteration"], ckpt["g_steps"]) == ("minimal_gan", 2, 2)
    assert (
        ckpt["metrics_protocol"]["protocol_id"]
        == json.loads((run / "metrics_protocol.json").read_text())["protocol_id"]
    )
    assert (run / "samples/last.png").is_file() and (run / "checkpoints/best.ckpt").is_file()


def test_the_schemes_implement_the_protocols_callbacks_read(tiny_cfg):
    gan = build_module(tiny_cfg([]), None)
    cyclegan = build_module(tiny_cfg(["experiment=cyclegan_digits2mnist"]), None)
    assert isinstance(gan, Scheme) and isinstance(gan, NoiseSampler) and not isinstance(gan, Translator)
    assert (
        isinstance(cyclegan, Scheme)
        and isinstance(cyclegan, Translator)
        and not isinstance(cyclegan, NoiseSampler)
    )


def test_a_callback_refuses_a_scheme_without_what_it_reads(tiny_cfg):
    cfg = tiny_cfg(
        [
            "experiment=cyclegan_digits2mnist",
            "+callbacks.samples._target_=ganforge.callbacks.samples.SampleGrid",
            "+callbacks.samples.dirpath=samples",
        ]
    )
    with pytest.raises(
        ConfigError, match="noise sample grids .* needs NoiseSampler .* lacks fixed_samples, generate"
    ):
        train(cfg)


def _objective(**kw) -> GANObjective:
    from ganforge.losses.adversarial import d_loss_bce, g_loss_nonsaturating

    return GANObjective(d_loss=d_loss_bce, g_loss=g_loss_nonsaturating, **kw)


def test_phases_of_an_objective_in_the_order_they_run():
    def zero(*args, **kwargs):
        return torch.zeros(())

    objective = _objective(
        penalties={"r1": Penalty(zero, 1.0, every=16)}, g_penalties={"pl": Penalty(zero, 2.0, every=4)}
    )
    from ganforge.modules.phases import build_phases

    phases = build_phases(objective)
    assert [type(p) for p in phases] == [
        DiscriminatorMain,
        DiscriminatorPenalty,
        GeneratorMain,
        GeneratorPenalty,
    ]
    assert [p.name for p in phases] == ["D main", "D reg r1", "G main", "G reg pl"]


def test_lazy_generator_regularizer_runs_every_k_generator_steps_with_weight_times_k(tiny_cfg):
    calls = []

    def mean_square(generator, z, labels):
        calls.append(z.shape[0])
        return generator(z, labels).square().mean()

    cfg = tiny_cfg(["trainer.limit_train_batches=6", "loss.n_critic=2"])
    module = build_module(cfg, None)
    module.objective.g_penalties = {"ms": Penalty(mean_square, weight=0.5, every=2)}
    from ganforge.modules.phases import build_phases

    module.phases = build_phases(module.objective)
    seen = []
    phase = module.phases[-1]
    original = phase.loss

    def spy(mod, batch):
        term = original(mod, batch)
        seen.append((mod.iteration, mod.g_steps, float(term / batch.logs["train/ms"])))
        return term

    phase.loss = spy
    from hydra.utils import instantiate

    bare_trainer(limit_train_batches=6).fit(module, datamodule=instantiate(cfg.data))
    # G steps at iterations 1, 3, 5 (n_critic 2); the regularizer at G steps 0 and 2, weighted 0.5 * 2
    assert [(i, g) for i, g, _ in seen] == [(1, 0), (5, 2)] and all(w == pytest.approx(1.0) for *_, w in seen)
    assert calls == [8, 8] and module.g_steps == 3


def test_cosine_decay_follows_r3gans_gamma_schedule():
    # R3GAN's cosine_decay_with_warmup without warm-up: base + (1 - d) * (final - base), d = (1 + cos(pi t)) / 2
    base, final = 0.05, 0.005
    for t in (0.0, 0.25, 0.5, 0.9, 1.0, 1.5):
        d = 0.5 * (1 + torch.cos(torch.tensor(torch.pi * min(t, 1.0)))).item()
        assert cosine_decay(base, t, final_ratio=0.1) == pytest.approx(base + (1 - d) * (final - base))
    assert cosine_decay(1.0, 0.25, final_ratio=0.0, until=0.5) == pytest.approx(0.5)


def test_r3gan_weighs_each_penalty_gamma_over_two_and_decays_gamma(tiny_cfg):
    cfg = tiny_cfg(["loss=r3gan", "model.discriminator.norm=layer", "model.max_iters=10"])
    module = build_module(cfg, None)
    r1, r2 = module.objective.penalties["r1"], module.objective.penalties["r2"]
    assert r1.weight == r2.weight == 0.025  # gamma / 2 with R3GAN's CIFAR-10 gamma = 0.05
    module.iteration = 0
    assert 2 * r1.weight_at(module.progress()) == pytest.approx(0.05)
    module.iteration = 10
    assert 2 * r2.weight_at(module.progress()) == pytest.approx(0.005)

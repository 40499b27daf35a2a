"""SNGAN ResNet, conditional batch norm, projection and ACGAN discriminators, conditional
sampling through ``ganforge-generate``, and a few training steps of every experiment variant."""

from __future__ import annotations

import csv

import pytest
import torch

from ganforge.generate import generate
from ganforge.generate import main as generate_main
from ganforge.networks.sngan import SNGANDiscriminator, SNGANGenerator
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint, load_generator


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = SNGANDiscriminator(img_size=16, channels=1, width=8, num_classes=10)
    with torch.no_grad():
        for m in d.modules():
            if hasattr(m, "weight_orig"):
                m.weight_orig.mul_(25.0)  # raw weights far from norm 1
        x = torch.randn(1, 1, 16, 16)
        for _ in range(30):  # one power iteration per forward pass in training mode
            d(x, torch.zeros(1, dtype=torch.long))
    normalized = [m for m in d.modules() if hasattr(m, "weight_orig")]
    assert len(normalized) >= 12  # 4 blocks x 2-3 convolutions, the linear head and the embedding
    for m in normalized:
        raw = torch.linalg.matrix_norm(m.weight_orig.flatten(1), ord=2)
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
        assert raw > 2 and sigma == pytest.approx(1.0, abs=0.02)


def test_conditional_batch_norm_applies_the_labels_class():
    torch.manual_seed(0)
    g = SNGANGenerator(latent_dim=8, img_size=16, channels=1, width=8, num_classes=4).eval()
    z = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    # At initialisation every class has gain 1 and bias 0: the label has no effect yet.
    assert torch.allclose(g(z, labels), g(z, torch.zeros(6, dtype=torch.long)))
    with torch.no_grad():
        for block in g.blocks:
            block.bn2.bias.weight[2].fill_(3.0)  # class 2 alone gets a large bias
    out = g(z, labels)
    same = g(z, torch.zeros(6, dtype=torch.long))
    changed = (out - same).flatten(1).abs().amax(1) > 1e-3
    assert changed.tolist() == [False, False, True, False, False, True]
    # Each sample follows its own label: a mixed batch equals the per-class batches (eval mode).
    for c in range(4):
        assert torch.allclose(
            out[labels == c], g(z[labels == c], torch.full(((labels == c).sum(),), c)), atol=1e-5
        )


def test_projection_discriminator_adds_embed_dot_features():
    torch.manual_seed(0)
    d = SNGANDiscriminator(img_size=16, channels=1, width=8, num_classes=3, spectral_norm=False)
    x = torch.randn(5, 1, 16, 16)
    h = torch.relu(d.blocks(x)).sum(dim=(2, 3))
    for a, b in ((0, 1), (2, 0)):
        ya, yb = torch.full((5,), a), torch.full((5,), b)
        expected = ((d.embed.weight[a] - d.embed.weight[b]) * h).sum(1)
        assert torch.allclose(d(x, ya) - d(x, yb), expected, atol=1e-4)


def test_acgan_discriminator_returns_class_logits():
    d = SNGANDiscriminator(img_size=16, channels=1, width=8, num_classes=10, conditioning="aux")
    logits, classes = d(torch.randn(3, 1, 16, 16))
    assert logits.shape == (3,) and classes.shape == (3, 10)
    with pytest.raises(ValueError, match="projection, aux"):
        SNGANDiscriminator(conditioning="concat")


def test_generate_label_samples_one_class_of_a_conditional_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(
        ["model=sngan_cond", "data=digits", "data.img_size=16", "loss=hinge", "trainer.limit_val_batches=0"]
    )
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    seen = []
    forward = SNGANGenerator.forward

    def spy(self, z, labels=None):
        seen.append(labels.clone())
        return forward(self, z, labels)

    monkeypatch.setattr(SNGANGenerator, "forward", spy)
    samples, config = generate(ckpt, n=6, seed=1, label=3)
    assert config["model"]["num_classes"] == 10 and samples.shape == (6, 1, 16, 16)
    assert torch.equal(seen[-1], torch.full((6,), 3))
    # The same noise through the class-3 generator gives exactly these samples, and another class differs.
    net, _ = load_generator(ckpt)
    z = torch.randn(6, cfg.model.latent_dim, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(samples, net(z, torch.full((6,), 3)))
    generate_main([f"ckpt={ckpt}", "n=4", "label=3", f"out={tmp_path / 'gen'}"])
    assert (tmp_path / "gen" / "grid.png").is_file() and torch.equal(seen[-1], torch.full((4,), 3))
    with pytest.raises(SystemExit):
        generate_main([f"ckpt={ckpt}", "label=10"])


# Every model x loss x regularizer of the loss-zoo experiment, plus the conditional models.
EXPERIMENT_VARIANTS = [
    ["loss=ns"],
    ["loss=minimax"],
    ["loss=lsgan"],
    ["loss=hinge"],
    ["loss=wgan_gp", "trainer.limit_train_batches=5"],  # 5 critic steps before G's first step
    ["loss=r3gan"],
    ["model.discriminator.spectral_norm=true"],
    ["augment=diffaugment"],
    ["augment=ada", "model.augment.speed_images=10000"],
]


@pytest.mark.parametrize("variant", EXPERIMENT_VARIANTS, ids=lambda v: v[0])
def test_loss_zoo_variant_trains(tiny_cfg, variant):
    # The experiment's 28 px model and losses on the faster-loading digits: the combination is what is tested.
    cfg = tiny_cfg(
        [
            "experiment=loss_zoo_mnist5k",
            "data=digits",
            "data.img_size=28",
            "trainer.limit_val_batches=0",
            *variant,
        ]
    )
    metrics = train(cfg)
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("train/d_loss", "train/g_loss"))
    state = load_checkpoint(f"{cfg.paths.output_dir}/checkpoints/last.ckpt")["ganforge"]
    assert state["g_steps"] == state["iteration"] // cfg.loss.n_critic >= 1


@pytest.mark.parametrize("model", ["sngan", "acgan"])  # sngan_cond trains in the generate test
def test_sngan_models_train(tiny_cfg, model):
    cfg = tiny_cfg(
        [f"model={model}", "data=digits", "data.img_size=16", "loss=hinge", "trainer.limit_val_batches=0"]
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/g_loss"]))
    rows = list(csv.DictReader(open(f"{cfg.paths.output_dir}/metrics.csv")))
    has_aux = any(r.get("train/d_loss_aux") for r in rows)
    assert has_aux == (model == "acgan")

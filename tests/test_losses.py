"""Losses and penalties on hand-computed values; the loss configs compose and validate."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from ganforge.config import ConfigError, validate_config
from ganforge.losses import adversarial as adv
from ganforge.losses.objective import GANObjective
from ganforge.losses.regularizers import gradient_penalty, r1_penalty, r2_penalty

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])
LN2 = math.log(2.0)


def test_hinge_on_known_logits():
    # relu(1 - real) = [0, 0.5, 2] and relu(1 + fake) = [0, 1, 2.5]: means 5/6 and 7/6.
    assert adv.d_loss_hinge(REAL, FAKE).item() == pytest.approx(2.0)
    assert adv.g_loss_hinge(FAKE).item() == pytest.approx(0.5 / 3)


def test_classic_losses_at_known_logits():
    zeros, big = torch.zeros(4), torch.full((4,), 30.0)
    assert adv.d_loss_bce(zeros, zeros).item() == pytest.approx(2 * LN2)
    assert adv.g_loss_nonsaturating(zeros).item() == pytest.approx(LN2)
    assert adv.g_loss_minimax(zeros).item() == pytest.approx(-LN2)
    # D sure a fake is fake (logit -30): minimax G loss is flat there, non-saturating is steep.
    logits = (-big).requires_grad_(True)
    (g_mm,) = torch.autograd.grad(adv.g_loss_minimax(logits), logits)
    (g_ns,) = torch.autograd.grad(adv.g_loss_nonsaturating(logits), logits)
    assert g_mm.abs().max() < 1e-12 and g_ns.abs().min() > 0.2
    # LSGAN: 0.5 * ((2-1)^2 + (0.5-1)^2 + (-1-1)^2) / 3 + 0.5 * (4 + 0 + 2.25) / 3
    assert adv.d_loss_lsgan(REAL, FAKE).item() == pytest.approx(0.5 * 5.25 / 3 + 0.5 * 6.25 / 3)
    assert adv.g_loss_lsgan(torch.ones(3)).item() == 0.0
    assert adv.d_loss_wasserstein(REAL, FAKE).item() == pytest.approx(-0.5 / 3 - 1.5 / 3)
    # Relativistic pairing: softplus(fake - real) per pair = softplus([-4, -0.5, 2.5]).
    expected = sum(math.log1p(math.exp(v)) for v in (-4.0, -0.5, 2.5)) / 3
    assert adv.d_loss_relativistic(REAL, FAKE).item() == pytest.approx(expected)
    assert adv.g_loss_relativistic(FAKE, REAL).item() == pytest.approx(
        sum(math.log1p(math.exp(v)) for v in (4.0, 0.5, -2.5)) / 3
    )
    assert adv.aux_class_loss(torch.zeros(5, 10), torch.arange(5)).item() == pytest.approx(math.log(10))


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())

    def forward(self, x, labels=None):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_of_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    w = torch.tensor([3.0, 0.0, 0.0, 0.0])  # ||w|| = 3 -> (3 - 1)^2 = 4 at every interpolate
    critic = LinearCritic(w)
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(4.0)
    # The penalty reaches D's weights (double backprop): d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
    (grad_w,) = torch.autograd.grad(gp, critic.w)
    assert torch.allclose(grad_w, torch.tensor([4.0, 0.0, 0.0, 0.0]), atol=1e-5)
    assert gradient_penalty(
        LinearCritic(torch.tensor([0.6, 0.8, 0.0, 0.0])), real, fake
    ).item() == pytest.approx(0.0, abs=1e-10)


def test_r1_and_r2_of_a_quadratic():
    # D(x) = 0.5 ||x||^2 has gradient x: R1 = mean over samples of ||x_real||^2, R2 likewise on fakes.
    def critic(x, labels=None):
        return 0.5 * x.flatten(1).pow(2).sum(1)

    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).view(2, 1, 1, 2)
    fake = torch.tensor([[1.0, 1.0], [2.0, 0.0]]).view(2, 1, 1, 2)
    assert r1_penalty(critic, real, fake).item() == pytest.approx((5 + 9) / 2)
    assert r2_penalty(critic, real, fake).item() == pytest.approx((2 + 4) / 2)
    # Penalties read the real/fake logit of a D that also returns class logits (ACGAN).
    assert r1_penalty(lambda x, y=None: (critic(x), None), real).item() == pytest.approx(7.0)


@pytest.mark.parametrize("option", ["wgan_gp", "r3gan"])
def test_penalised_losses_compose_with_their_paper_values(tiny_cfg, option):
    cfg = tiny_cfg([f"loss={option}", "model.discriminator.norm=layer"])
    validate_config(cfg)
    objective = instantiate(cfg.loss, _convert_="all")
    if option == "wgan_gp":
        assert objective.n_critic == 5 and objective.penalties["gp"].weight == 10.0
        assert objective.penalties["gp"].fn.func is gradient_penalty
    else:
        assert objective.g_needs_real and set(objective.penalties) == {"r1", "r2"}
        assert objective.penalties["r1"].weight == objective.penalties["r2"].weight  # one gamma / 2


def test_penalty_added_to_any_loss_with_lazy_interval(tiny_cfg):
    cfg = tiny_cfg(["loss=hinge", "+loss/penalty@loss.penalties.r1=r1", "loss.penalties.r1.every=16"])
    with pytest.raises(ConfigError, match="norm=layer"):
        validate_config(cfg)  # DCGAN's batch-norm D cannot take per-sample gradients
    cfg = tiny_cfg(["loss=hinge", "+loss/penalty@loss.penalties.r1=r1", "loss.penalties.r1.every=16"])
    cfg.model.discriminator.norm = "layer"
    validate_config(cfg)
    penalty = instantiate(cfg.loss, _convert_="all").penalties["r1"]
    assert penalty.fn.func is r1_penalty and penalty.every == 16


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["loss=wgan_gp"], "loss.penalties.gp"),
        (["loss=r3gan", "model.discriminator.norm=layer", "loss.penalties.r1.weight=-1"], "weight must be"),
        (["loss=r3gan", "model.discriminator.norm=layer", "loss.penalties.r2.every=0"], "every must be"),
        (["loss.aux_weight=-0.5"], "loss.aux_weight"),
        (["loss.topk_gamma=1.5"], "loss.topk_gamma"),
        (["loss.topk_min_fraction=0"], "loss.topk_min_fraction"),
    ],
)
def test_bad_penalty_settings_are_config_errors(tiny_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_cfg(overrides))


def test_topk_count_decays_per_epoch_to_its_floor():
    objective = adv_objective(topk_gamma=0.5, topk_min_fraction=0.25)
    assert [objective.topk_count(8, epoch) for epoch in range(4)] == [8, 4, 2, 2]
    assert adv_objective().topk_count(8, 100) == 8  # gamma 1.0: off
    assert adv_objective(topk_gamma=0.99).topk_count(100, 10) == math.ceil(100 * 0.99**10)


def adv_objective(**kwargs) -> GANObjective:
    return GANObjective(d_loss=adv.d_loss_hinge, g_loss=adv.g_loss_hinge, **kwargs)


@pytest.mark.parametrize("loss, g_loss", [("hinge", "g_loss_hinge"), ("r3gan", "g_loss_relativistic")])
def test_topk_generator_loss_sees_only_the_k_highest_fake_logits(tiny_cfg, monkeypatch, loss, g_loss):
    """Top-k training: G's loss gets D's k largest logits on the fakes (and, for a relativistic
    loss, D's logits on the reals of the same rows); D's loss still sees the whole batch."""
    from ganforge.modules.gan import GANModule
    from ganforge.train import train

    outputs, checked = [], []
    discriminate = GANModule.discriminate

    def spy_discriminate(self, x, labels):
        out = discriminate(self, x, labels)
        outputs.append(out[0].detach())
        return out

    original = getattr(adv, g_loss)

    def spy_g_loss(fake_logits, real_logits=None):
        if real_logits is None:
            fakes = outputs[-1]
        else:
            fakes, reals = outputs[-2], outputs[-1]
        keep = fakes.topk(len(fake_logits)).indices
        torch.testing.assert_close(fake_logits.detach(), fakes[keep])
        if real_logits is not None:
            torch.testing.assert_close(real_logits.detach(), reals[keep])
        checked.append((len(fakes), len(fake_logits)))
        return original(fake_logits, real_logits) if real_logits is not None else original(fake_logits)

    monkeypatch.setattr(GANModule, "discriminate", spy_discriminate)
    monkeypatch.setattr(adv, g_loss, spy_g_loss)
    overrides = [
        "experiment=mode_collapse_ring8",
        f"loss={loss}",
        "data.batch_size=8",
        "trainer.max_epochs=2",
    ]
    train(tiny_cfg([*overrides, "loss.topk_gamma=0", "loss.topk_min_fraction=0.25"]))
    assert checked == [(8, 8), (8, 8), (8, 2), (8, 2)]  # epoch 0: gamma**0 = 1 keeps all; then 25 %

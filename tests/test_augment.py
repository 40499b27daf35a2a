"""DiffAugment and ADA: exact ops, shapes and ranges, gradients, the ADA controller, and that D
sees every real and fake image through the same augmentation in both steps."""

from __future__ import annotations

import csv

import pytest
import torch
from hydra.utils import instantiate

from ganforge.augment import ops
from ganforge.augment.ada import AdaptiveAugment
from ganforge.augment.diffaugment import DiffAugment
from ganforge.config import ConfigError, validate_config
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint
from tests.conftest import TINY_UNPAIRED, conf_options


def test_translate_and_cutout_on_a_known_image():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    shifted = ops.translate(x, torch.tensor([1]), torch.tensor([-1]), fill="zeros")
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, :3, 1:] = x[0, 0, 1:, :3]  # one right, one up, zeros shifted in
    assert torch.equal(shifted, expected)
    mirrored = ops.translate(x, torch.tensor([1]), torch.tensor([0]), fill="reflect")
    assert torch.equal(mirrored[0, 0, :, 0], x[0, 0, :, 1]) and torch.equal(
        mirrored[0, 0, :, 1:], x[0, 0, :, :3]
    )
    cut = ops.cutout(x, (2, 2), torch.tensor([1]), torch.tensor([-1]))  # partly outside the left edge
    assert cut[0, 0, 1:3, 0].eq(0).all() and (cut != 0).sum() == 14
    assert torch.equal(ops.rotate90(x, torch.tensor([1])), torch.rot90(x, 1, (2, 3)))


def test_diffaugment_keeps_shapes_ranges_and_passes_gradients():
    torch.manual_seed(0)
    x = (torch.rand(16, 3, 16, 16) * 2 - 1).requires_grad_(True)
    geometric = DiffAugment("translation,cutout")(x)
    assert geometric.shape == x.shape and geometric.dtype == x.dtype
    assert geometric.min() >= -1 and geometric.max() <= 1  # moves and zeroes pixels, never rescales
    assert (geometric == 0).float().mean() > 0.1  # cutout removed ~1/4 of each image
    out = DiffAugment()(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # Colour is bounded: brightness +-0.5, then saturation x<=2 and contrast x<=1.5 about means in [-1.5, 1.5].
    assert out.abs().max() <= 1.5 * (1 + 2 * 2) * (1 + 2 * 1.5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G learns through T
    with pytest.raises(ValueError, match="valid: color, translation, cutout"):
        DiffAugment("color,zoom")


def test_ada_probability_follows_the_overfitting_heuristic():
    ada = AdaptiveAugment(target=0.6, speed_images=100, interval=2)
    confident = torch.full((8,), 3.0)  # r_t = E[sign(D(real))] = 1 > 0.6: D overfits
    for _ in range(6):
        ada.update(confident)
    # 3 adjustments of 16 images / 100 each.
    assert ada.p.item() == pytest.approx(0.48) and ada.rt.item() == 1.0
    unsure = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0])  # r_t = 0.25 < 0.6
    for _ in range(2):
        ada.update(unsure)
    assert ada.p.item() == pytest.approx(0.32) and ada.rt.item() == pytest.approx(0.25)
    for _ in range(20):
        ada.update(-confident)
    assert ada.p.item() == 0.0  # clipped at 0
    fixed = AdaptiveAugment(p=0.3, adaptive=False)
    fixed.update(confident)
    assert fixed.p.item() == pytest.approx(0.3)


def test_ada_p_moves_by_images_not_by_packed_logits():
    # A D with pack=4 returns 2 logits for 8 real images: p must move by the 8 images, as unpacked.
    packed, plain = (
        AdaptiveAugment(speed_images=100, interval=1),
        AdaptiveAugment(speed_images=100, interval=1),
    )
    packed.update(torch.full((2,), 3.0), images=8)
    plain.update(torch.full((8,), 3.0), images=8)
    assert packed.p.item() == pytest.approx(0.08) == plain.p.item()
    # r_t stays the mean sign over D's outputs, whatever their number per image
    patch = AdaptiveAugment(speed_images=100, interval=1)
    patch.update(torch.tensor([[1.0, -1.0], [1.0, 1.0]]), images=2)
    assert patch.rt.item() == pytest.approx(0.5) and patch.p.item() == pytest.approx(
        0.0
    )  # 0.5 < 0.6: clipped


def test_ada_state_survives_a_checkpoint_between_adjustments():
    ada = AdaptiveAugment(speed_images=100, interval=3)
    ada.update(torch.full((4,), 1.0), images=4)
    restored = AdaptiveAugment(speed_images=100, interval=3)
    restored.load_state_dict(ada.state_dict())
    for module in (ada, restored):
        module.update(torch.full((4,), 1.0), images=4)
        module.update(torch.full((4,), 1.0), images=4)
    assert restored.p.item() == pytest.approx(0.12) == ada.p.item()
    old = {k: v for k, v in ada.state_dict().items()}
    old["_stats"] = torch.tensor(
        [4.0, 4.0, 1.0], dtype=torch.float64
    )  # a checkpoint from before images counted
    legacy = AdaptiveAugment(speed_images=100, interval=2)
    legacy.load_state_dict(old)
    legacy.update(torch.full((4,), 1.0), images=4)
    assert legacy.p.item() == pytest.approx(0.12 + 0.08)


def test_ada_contrast_scales_colours_about_mid_grey():
    # stylegan2-ada's contrast is a 3-D scale of the colour vector: x -> c * x on [-1, 1] images,
    # so mid-grey (0) is the fixed point, not each image's mean.
    x = torch.tensor([0.5, -0.25, 0.0, 1.0]).view(1, 1, 2, 2).repeat(2, 3, 1, 1)
    torch.manual_seed(0)
    out = AdaptiveAugment(p=1.0, transforms="contrast")(x)
    torch.manual_seed(0)
    fired = torch.rand(2) < 1.0
    factor = torch.where(fired, torch.exp2(torch.randn(2) * 0.5), 1.0)
    assert torch.allclose(out, x * factor.view(2, 1, 1, 1))
    assert (out[:, :, 1, 0] == 0).all()  # a mid-grey pixel stays mid-grey
    assert not torch.allclose(out.mean((1, 2, 3)), x.mean((1, 2, 3)))  # the image mean moves


def test_ada_pipeline_at_p_0_and_1():
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    assert AdaptiveAugment(p=0.0)(x) is x
    out = AdaptiveAugment(p=1.0)(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0
    flips = AdaptiveAugment(p=1.0, transforms="xflip")(x.detach())
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(2)) for f, o in zip(flips, x.detach(), strict=True))


@pytest.mark.parametrize("option", conf_options("augment"))
def test_every_augment_option_instantiates(tiny_cfg, option):
    cfg = tiny_cfg([f"augment={option}"])
    validate_config(cfg)
    module = instantiate(cfg.model.augment)
    assert module(torch.zeros(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_bad_augment_settings_are_config_errors(tiny_cfg):
    with pytest.raises(ConfigError, match="model.augment.policy"):
        validate_config(tiny_cfg(["augment=diffaugment", "model.augment.policy='color,zoom'"]))
    with pytest.raises(ConfigError, match=r"model.augment.p must be in \[0, 1\]"):
        validate_config(tiny_cfg(["augment=ada", "model.augment.p=1.5"]))


def spy_on_judging(monkeypatch, discriminator: type) -> tuple[list, list]:
    """Record every DiffAugment output and every first input of ``discriminator``'s forward."""
    augmented, seen = [], []
    forward_aug, forward_d = DiffAugment.forward, discriminator.forward

    def spy_aug(self, x):
        out = forward_aug(self, x)
        augmented.append(out)
        return out

    def spy_d(self, x, *rest):
        seen.append(x)
        return forward_d(self, x, *rest)

    monkeypatch.setattr(DiffAugment, "forward", spy_aug)
    monkeypatch.setattr(discriminator, "forward", spy_d)
    return augmented, seen


def test_d_sees_real_and_fake_through_the_same_augmentation(tiny_cfg, monkeypatch):
    """Every D input in training (D step, G step, R1/R2 penalties) is an output of the one DiffAugment."""
    from ganforge.networks.dcgan import DCGANDiscriminator

    augmented, seen = spy_on_judging(monkeypatch, DCGANDiscriminator)
    train(
        tiny_cfg(
            [
                "augment=diffaugment",
                "loss=r3gan",
                "model.discriminator.norm=layer",
                "trainer.limit_val_batches=0",
                "data=digits",
            ]
        )
    )
    # Per batch: D step real + fake, R1 + R2, G step fake + real (relativistic): 6 D calls.
    assert len(seen) == 2 * 6
    assert all(any(x is a for a in augmented) for x in seen)


def test_ada_p_is_logged_and_checkpointed(tiny_cfg):
    cfg = tiny_cfg(
        [
            "augment=ada",
            "model.augment.interval=1",
            "model.augment.speed_images=8",
            "model.augment.p=0.5",
            "data=digits",
        ]
    )
    train(cfg)
    rows = list(csv.DictReader(open(f"{cfg.paths.output_dir}/metrics.csv")))
    logged = [float(r["train/ada_p"]) for r in rows if r.get("train/ada_p")]
    assert len(logged) == 2 and all(0.0 <= p <= 1.0 for p in logged) and logged[0] in (0.0, 1.0)
    state = load_checkpoint(f"{cfg.paths.output_dir}/checkpoints/last.ckpt")["state_dict"]
    assert state["augment.p"].item() == pytest.approx(logged[-1])


@pytest.mark.parametrize(
    ("scheme", "extra", "calls_per_batch"),
    [
        # D step: real B + translated B; G step: translated B
        ("cut", ["loss.nce_layers=[input,down1,down2,block1]"], 3),
        # G step: G(A) by D_B + F(B) by D_A; D step: real and pooled for each of the two
        ("cyclegan", [], 6),
    ],
)
def test_unpaired_translation_judges_every_image_through_the_augmentation(
    tiny_cfg, monkeypatch, scheme, extra, calls_per_batch
):
    """With augment=diffaugment every image a translation discriminator sees, real, translated or
    pooled, in D's and G's steps, is an output of the one DiffAugment."""
    from ganforge.networks.patchgan import PatchDiscriminator

    augmented, seen = spy_on_judging(monkeypatch, PatchDiscriminator)
    overrides = [
        f"model={scheme}",
        f"loss={scheme}",
        "augment=diffaugment",
        *TINY_UNPAIRED,
        "trainer.limit_val_batches=0",
        *extra,
    ]
    metrics = train(tiny_cfg(overrides))
    assert torch.isfinite(torch.tensor([metrics["train/g_loss"], metrics["train/d_loss"]])).all()
    assert len(seen) == 2 * calls_per_batch  # two batches
    assert all(any(x is a for a in augmented) for x in seen)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=pix2pix", "loss=pix2pix", "data=edges2photos", "augment=diffaugment"],
            "judges \\(A, B\\) pairs",
        ),
        (["model=cyclegan", "loss=cyclegan", "data=digits2mnist", "augment=ada"], "use augment=diffaugment"),
    ],
)
def test_augmentations_a_translation_scheme_cannot_use_are_refused(tiny_cfg, overrides, message):
    from ganforge.train import build_module

    with pytest.raises(ConfigError, match=message):
        build_module(tiny_cfg(overrides), None)


def test_ada_at_a_fixed_probability_serves_translation(tiny_cfg):
    from ganforge.train import build_module

    cfg = tiny_cfg(
        ["model=cut", "loss=cut", "data=digits2mnist", "augment=ada", "model.augment.adaptive=false"]
    )
    assert isinstance(build_module(cfg, None).augment, AdaptiveAugment)


def test_luminance_view_is_the_bt601_grey_image_and_passes_gradients():
    from ganforge.augment.views import Luminance

    torch.manual_seed(0)
    x = (torch.rand(4, 3, 8, 8) * 2 - 1).requires_grad_(True)
    grey = Luminance()(x)
    assert grey.shape == x.shape
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(grey, luma.unsqueeze(1).expand(-1, 3, -1, -1))
    grey.sum().backward()  # each output channel repeats the luma: d/dx_c = 3 * w_c
    expected = 3 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).expand_as(x)
    torch.testing.assert_close(x.grad, expected)
    one = torch.rand(1, 1, 8, 8)
    assert torch.equal(Luminance()(one), one)  # a grey image is its own luminance
    with pytest.raises(ValueError, match="needs RGB or grey images"):
        Luminance()(torch.zeros(1, 4, 8, 8))


@pytest.mark.parametrize(
    ("scheme", "data"),
    [
        ("cut", ["experiment=cut_photo2painting", "augment=luminance"]),
        ("cyclegan", ["experiment=cyclegan_photo2painting", "augment=luminance"]),
        ("pix2pix", ["experiment=pix2pix_edges2photos"]),
    ],
)
def test_discriminator_warmup_steps_only_the_discriminators_first(tiny_cfg, monkeypatch, scheme, data):
    """model.d_warmup_iters=2 of 4 iterations: the first two step D alone, the last two D and G;
    with augment=luminance every image a discriminator sees is grey."""
    from ganforge.modules.scheme import TrainingScheme
    from ganforge.networks.patchgan import PatchDiscriminator

    stepped, seen = [], []
    step, forward_d = TrainingScheme.step_optimizer, PatchDiscriminator.forward

    def spy_step(self, optimizer, loss):
        opt_g, _ = self.optimizers()
        stepped.append((self.iteration, "G" if optimizer is opt_g else "D"))
        step(self, optimizer, loss)

    def spy_d(self, x, *rest):
        seen.append(x.detach())
        return forward_d(self, x, *rest)

    monkeypatch.setattr(TrainingScheme, "step_optimizer", spy_step)
    monkeypatch.setattr(PatchDiscriminator, "forward", spy_d)
    photos = ["data.photo_size=40", "data.img_size=32", "data.load_size=36", "data.painterly.passes=1"]
    sizes = photos[:3] if scheme == "pix2pix" else photos
    overrides = [*data, *sizes, "model.generator.width=4", "model.discriminator.width=4"]
    overrides += [
        "model.d_warmup_iters=2",
        "trainer.limit_train_batches=1",
        "trainer.max_epochs=4",
        "trainer.limit_val_batches=0",
    ]
    metrics = train(tiny_cfg(overrides))
    d_only = [(0, "D"), (1, "D")]
    per_iteration = ["G", "D"] if scheme == "cyclegan" else ["D", "G"]  # each scheme's order
    assert stepped == d_only + [(i, who) for i in (2, 3) for who in per_iteration]
    assert torch.isfinite(torch.tensor([metrics["train/g_loss"], metrics["train/d_loss"]])).all()
    if "augment=luminance" in data:
        assert seen and all(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]) for x in seen)


def test_discriminator_warmup_is_checked(tiny_cfg):
    with pytest.raises(ConfigError, match=r"model.d_warmup_iters.*>= 0"):
        validate_config(tiny_cfg(["model=cut", "loss=cut", *TINY_UNPAIRED, "model.d_warmup_iters=-1"]))

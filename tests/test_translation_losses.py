"""Loss terms, the image pool and the translation networks on hand-checked values."""

from __future__ import annotations

import pytest
import torch

from ganforge.losses.translation import (
    TranslationObjective,
    cycle_loss,
    identity_loss,
    l1_loss,
    total_variation,
)
from ganforge.networks.patchgan import PatchDiscriminator, receptive_field
from ganforge.networks.resnet_translator import ResnetTranslator
from ganforge.networks.unet import UNetGenerator
from ganforge.utils.image_pool import ImagePool


def test_l1_terms_on_hand_checked_values():
    real = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    other = torch.tensor([[[[0.5, 1.0], [1.0, -0.5]]]])
    # |0.5| + 0 + |2| + |1| over 4 pixels
    assert cycle_loss(real, other).item() == pytest.approx(3.5 / 4)
    assert identity_loss(real, other).item() == pytest.approx(3.5 / 4)
    assert l1_loss(other, real).item() == pytest.approx(3.5 / 4)
    assert cycle_loss(real, real).item() == 0.0


def test_lsgan_objective_on_hand_checked_logits():
    obj = TranslationObjective(gan_mode="lsgan")
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    # D: 0.5 * (mean((real - 1)^2) + mean(fake^2)) = 0.5 * (0.5 + 2.0)
    assert obj.d_loss(real, fake).item() == pytest.approx(1.25)
    # G: CycleGAN's MSE(D(G(x)), 1) = mean((fake - 1)^2) = (1 + 1) / 2
    assert obj.g_loss(fake).item() == pytest.approx(1.0)


def test_vanilla_objective_on_hand_checked_logits():
    obj = TranslationObjective(gan_mode="vanilla", lambda_cycle=0, lambda_identity=0, lambda_l1=100)
    zero = torch.zeros(4)
    ln2 = torch.log(torch.tensor(2.0)).item()
    assert obj.d_loss(zero, zero).item() == pytest.approx(ln2)  # 0.5 * (ln 2 + ln 2)
    assert obj.g_loss(zero).item() == pytest.approx(ln2)
    assert obj.g_loss(torch.full((4,), 20.0)).item() < 1e-8


def test_total_variation_on_hand_checked_values():
    step = torch.tensor([[[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]]])  # 2 x 3, one vertical border of height 1
    # vertical neighbours: 3 pairs, all equal -> 0; horizontal: 4 pairs, 2 of them differ by 1 -> 0.5
    assert total_variation(step).item() == pytest.approx(0.5)
    assert total_variation(torch.full((2, 3, 5, 5), 0.3)).item() == 0.0
    edge = torch.zeros(1, 1, 5, 5)
    edge[..., 4] = 1.0  # a rise of 1 in one step ...
    ramp = torch.linspace(0, 1, 5).repeat(1, 1, 5, 1)  # ... or in four: an L1 penalty counts both alike
    assert total_variation(edge).item() == pytest.approx(0.25) == total_variation(ramp).item()
    obj, logs = TranslationObjective(lambda_tv=2.0), {}
    assert obj.priors(step, step, logs).item() == pytest.approx(1.0)
    assert logs.keys() == {"train/tv"} and logs["train/tv"].item() == pytest.approx(0.5)
    # with the L1 fidelity to the input: 2 * 0.5 + 4 * mean |step - 0| (2 of 6 pixels at 1)
    obj, logs = TranslationObjective(lambda_tv=2.0, lambda_content=4.0), {}
    assert obj.priors(torch.zeros_like(step), step, logs).item() == pytest.approx(1.0 + 4.0 / 3)
    assert logs["train/content"].item() == pytest.approx(1 / 3)
    logs = {}
    assert TranslationObjective().priors(step, step, logs).item() == 0.0 and logs == {}


@pytest.mark.parametrize(
    "bad", [{"gan_mode": "wgan"}, {"lambda_cycle": -1.0}, {"lambda_tv": -0.1}, {"lambda_content": -1.0}]
)
def test_objective_rejects_bad_settings(bad):
    with pytest.raises(ValueError, match="loss."):
        TranslationObjective(**bad)


def test_image_pool_fills_then_swaps_half():
    pool = ImagePool(size=4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4  # filling: returned as is
    new = -torch.arange(1.0, 401.0).view(400, 1, 1, 1)  # distinct values -1 ... -400
    out = pool.query(new, generator=torch.Generator().manual_seed(0)).flatten()
    assert len(pool) == 4  # never grows past its size
    kept = out == new.flatten()
    assert 160 < int(kept.sum()) < 240  # about half returned as is (binomial, 400 draws)
    for i in torch.nonzero(~kept).flatten().tolist():
        # a swapped-out image is one stored earlier: an original or a newer image seen before it
        value = out[i].item()
        assert value in (0.0, 1.0, 2.0, 3.0) or -value < i + 1
    # every image is either returned exactly once or still stored: nothing is lost or duplicated
    stored = [img.item() for img in pool.images]
    assert sorted(out.tolist() + stored) == sorted(first.flatten().tolist() + new.flatten().tolist())


def test_image_pool_of_size_zero_passes_through():
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    out = ImagePool(0).query(x)
    assert torch.equal(out, x.detach()) and not out.requires_grad


def test_patchgan_receptive_field_and_output_grid():
    assert receptive_field(3) == 70 and receptive_field(1) == 16
    d = PatchDiscriminator(channels=3, width=8, n_layers=3)
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6
    cond = PatchDiscriminator(channels=1, width=8, conditional=True)
    assert cond(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)).shape[1] == 1
    with pytest.raises(ValueError, match="source image"):
        cond(torch.zeros(1, 1, 32, 32))


def test_pixelgan_judges_each_pixel_alone():
    assert receptive_field(0) == 1
    d = PatchDiscriminator(channels=3, width=8, n_layers=0, norm="none").eval()
    x = torch.randn(2, 3, 12, 10)
    logits = d(x)
    assert logits.shape == (2, 1, 12, 10)  # one logit per pixel
    changed = x.clone()
    changed[:, :, 5, 7] += 1.0
    moved = (d(changed) - logits).abs().squeeze(1) > 0
    assert moved[:, 5, 7].all() and moved.sum() == 2  # only the changed pixel's logit moves
    assert all(m.kernel_size == (1, 1) for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="n_layers must be >= 0"):
        PatchDiscriminator(n_layers=-1)


def test_generators_are_fully_convolutional():
    resnet = ResnetTranslator(channels=3, width=8, n_blocks=2).eval()
    assert resnet(torch.zeros(1, 3, 20, 36)).shape == (1, 3, 20, 36)
    unet = UNetGenerator(channels=1, img_size=32, width=8).eval()
    assert unet.size_multiple == 32
    out = unet(torch.zeros(2, 1, 64, 96))
    assert out.shape == (2, 1, 64, 96) and out.abs().max() <= 1
    assert UNetGenerator(img_size=256, width=4).size_multiple == 256  # the paper's unet_256


def test_target_scores_on_known_errors():
    from ganforge.metrics.translation import TargetScores

    scores = TargetScores()
    assert scores.compute() == {}  # no paired batch: nothing to log
    target = torch.zeros(2, 3, 16, 16)
    # translations off by 0.2 everywhere: MSE 0.04, PSNR = 10 log10(2^2 / 0.04) = 20 dB;
    # inputs off by 1: MSE 1, PSNR = 10 log10(4) = 6.02 dB
    scores.update(torch.full_like(target, 0.2), torch.ones_like(target), target)
    out = scores.compute()
    assert out["val/psnr"].item() == pytest.approx(20.0, abs=1e-4)
    assert out["val/psnr_identity"].item() == pytest.approx(6.0206, abs=1e-3)
    scores.reset()
    scores.update(target + 0.0, target + 0.5, target)  # exact translation: SSIM 1
    assert scores.compute()["val/ssim"].item() == pytest.approx(1.0, abs=1e-5)
    assert len(scores.state_dict()) == 0  # running sums stay out of checkpoints

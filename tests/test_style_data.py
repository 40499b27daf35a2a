"""The style benchmark's data: the ink style, MNIST framing, disjoint halves, the baselines."""

from __future__ import annotations

import pytest
import torch

from ganforge.config import ConfigError
from ganforge.data.embedded_pairs import Digits2InkDataModule, Digits2MNISTDataModule, frame_like_mnist
from ganforge.data.ink import CORE, OUTLINE, PAPER, RIM, ink_style
from ganforge.metrics.translation import TargetScores

INK = {"img_size": 32, "load_size": 32, "channels": 3, "flip": False, "batch_size": 8}


def test_ink_style_of_a_single_pixel_has_the_known_colours():
    digit = torch.zeros(1, 1, 12, 12)
    digit[0, 0, 4, 4] = 1.0
    out = ink_style(digit, shadow_offset=2)
    assert out.shape == (1, 3, 12, 12)
    assert torch.allclose(out[0, :, 4, 4], torch.tensor(CORE))  # the dilated stroke is full ink
    assert torch.allclose(out[0, :, 3, 3], torch.tensor(CORE))  # ... one pixel around it too
    assert torch.allclose(out[0, :, 2, 2], torch.tensor(OUTLINE))  # the outline ring
    assert torch.allclose(out[0, :, 0, 11], torch.tensor(PAPER))  # far away: paper
    assert not torch.allclose(out[0, :, 7, 7], torch.tensor(PAPER))  # the drop shadow, down-right
    assert torch.allclose(out[0, :, 1, 1], torch.tensor(PAPER))  # ... and none up-left
    half = ink_style(digit * 0.5, shadow_strength=0.0)[0, :, 4, 4]  # half-strength ink over paper
    ink = (torch.tensor(RIM) + torch.tensor(CORE)) / 2  # ... in the colour half way along the ramp
    assert torch.allclose(half, torch.tensor(PAPER) + (ink - torch.tensor(PAPER)) * 0.5)
    assert torch.equal(ink_style(digit), out)  # deterministic


def test_ink_style_refuses_colour_input():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        ink_style(torch.zeros(1, 3, 8, 8))


def test_frame_like_mnist_fits_a_20px_box_centred_by_mass():
    digits = torch.zeros(2, 1, 8, 8)
    digits[0, :, :, :3] = 1.0  # mass on the left: shifted right to the centre
    digits[1] = 1.0
    framed = frame_like_mnist(digits)
    assert framed.shape == (2, 1, 28, 28)
    ys = torch.arange(28.0)
    for image in framed:
        mass = image.sum()
        assert abs(float((image.sum((0, 2)) * ys).sum() / mass) - 13.5) <= 0.5
        assert abs(float((image.sum((0, 1)) * ys).sum() / mass) - 13.5) <= 0.5
    rows = (framed[1, 0] > 0.01).any(1).nonzero()
    assert int(rows.max() - rows.min()) + 1 == 20  # the full 8x8 digit fills the 20 px box


def test_digits2ink_unpaired_halves_are_disjoint_and_the_held_out_digits_come_with_their_style():
    dm = Digits2InkDataModule(**INK)
    dm.setup()
    train, held_out = dm.train_set, dm.val_set
    assert not dm.paired and len(train.source_a) == len(train.source_b) == 2250 and len(held_out) == 500
    grey_b = train.source_b.images.mean(1)  # no B image is the rendering of an A image: compare the digits
    a = train.source_a.images[:, 0]
    assert not any(
        torch.equal(ink_style((a[i : i + 1, None] + 1) / 2)[0], train.source_b.images[i]) for i in range(20)
    )
    assert grey_b.shape == a.shape
    item = held_out[0]
    expected = ink_style((item["A"][:1].unsqueeze(0) + 1) / 2)[0] * 2 - 1
    assert torch.allclose(item["target"], expected, atol=1e-6)
    assert dm.dataset_id.startswith("digits2ink-32px-c3")


def test_digits2ink_paired_pairs_every_digit_with_its_rendering():
    dm = Digits2InkDataModule(paired=True, **INK)
    dm.setup()
    assert dm.paired and len(dm.train_set) == 4500
    item = dm.train_set[3]
    assert torch.allclose(item["B"], ink_style((item["A"][:1].unsqueeze(0) + 1) / 2)[0] * 2 - 1, atol=1e-6)


def test_digits2ink_needs_colour():
    with pytest.raises(ConfigError, match="data.channels must be 3"):
        Digits2InkDataModule(**{**INK, "channels": 1})


def test_digits2mnist_frames_a_like_mnist_and_refuses_unknown_frames():
    dm = Digits2MNISTDataModule(img_size=28, load_size=28, channels=1, flip=False, batch_size=4)
    dm.setup()
    a = dm.held_out("A")
    assert a.shape[-2:] == (28, 28)
    assert (a[:, :, :2, :] == -1).all() and (a[:, :, :, :2] == -1).all()  # MNIST's black margin
    assert "framemnist" in dm.dataset_id
    with pytest.raises(ConfigError, match="data.frame must be one of mnist, stretch"):
        Digits2MNISTDataModule(frame="box", img_size=28, load_size=28, channels=1)


def test_target_scores_log_the_mean_target_baseline():
    target = torch.rand(4, 3, 16, 16) * 2 - 1
    mean = target.mean(0, keepdim=True)
    scores = TargetScores()
    scores.update(target, -target, target, mean)
    result = scores.compute()
    assert set(result) == {f"val/{m}{s}" for m in ("psnr", "ssim") for s in ("", "_identity", "_mean_target")}
    assert result["val/psnr"] > 80 and result["val/psnr_identity"] < result["val/psnr_mean_target"]
    mse = ((mean - target) ** 2).mean()
    assert float(result["val/psnr_mean_target"]) == pytest.approx(float(10 * torch.log10(4 / mse)), rel=1e-4)
    scores.reset()
    scores.update(target, target, target)
    assert "val/psnr_mean_target" not in scores.compute()  # no mean target given: that baseline left out


def test_mean_target_is_the_mean_training_target():
    dm = Digits2InkDataModule(paired=True, **INK)
    mean = dm.mean_target()
    assert mean.shape == (1, 3, 32, 32)
    assert torch.allclose(
        mean[0], torch.stack([dm.train_set[i]["B"] for i in range(len(dm.train_set))]).mean(0), atol=1e-5
    )


def test_every_embedded_photo_loads_offline_as_rgb():
    from ganforge.data.embedded_pairs import PHOTOS, load_photo

    for name in PHOTOS:
        photo = load_photo(name)
        assert photo.ndim == 3 and photo.shape[2] == 3 and 0 <= photo.min() and photo.max() <= 1, name
    with pytest.raises(ValueError, match="unknown photo 'moon'; choose from astronaut"):
        load_photo("moon")

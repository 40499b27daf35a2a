"""The metric registry and the scores in it: names, protocol ids, IS and KID against torch-fidelity."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from ganforge import evaluate
from ganforge.callbacks.metrics import build_metric_callbacks
from ganforge.config import ConfigError
from ganforge.metrics import registry
from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.metrics.registry import FeatureSetMetric, QualityMetric, register_metric, registered_metrics
from ganforge.metrics.scores.inception_score import inception_score
from ganforge.metrics.scores.kid import kernel_inception_distance, mmd2_unbiased

DATASET = "mnist5k|img28|c1|val0.1|split0"


def real_stats(evaluator: MetricEvaluator, features: torch.Tensor) -> RealStatistics:
    return RealStatistics.from_features(features, (1, 28, 28), evaluator.key_fields(DATASET))


# ----------------------------------------------------------------------------- registry
def test_names_are_registered_classes_and_unknown_ones_are_refused(tiny_cfg):
    assert list(registered_metrics()) == ["dc", "fid", "fid_intra", "is", "kid", "pr"]
    with pytest.raises(
        ValueError,
        match=r"unknown metric\(s\) \['fdi'\] in metrics.names; choose from dc, fid, fid_intra, is, kid, pr",
    ):
        MetricEvaluator(names=["fid", "fdi"], cache_dir=None)
    with pytest.raises(ValueError, match=r"unknown metrics setting\(s\) \['kid_subsetz'\]"):
        MetricEvaluator(names=["kid"], cache_dir=None, kid_subsetz=10)
    with pytest.raises(ValueError, match="choose from dc, fid, fid_intra, is, kid, pr"):
        evaluate.parse_args(["real=a", "fake=b", "names=fid,precision"])
    # In training the refusal comes when the callbacks are built, before fit, as one line.
    cfg = tiny_cfg(["metrics=domain", "metrics.names=[fid,precision]"])
    with pytest.raises(ConfigError) as err:
        build_metric_callbacks(cfg.metrics)
    assert (
        "\n" not in str(err.value)
        and "['precision']" in str(err.value)
        and "dc, fid, fid_intra, is, kid, pr" in str(err.value)
    )


# Ids computed by the evaluator before the registry (its protocol() listed every setting itself).
PRE_REGISTRY_IDS = [
    ({"names": ("fid", "kid", "is", "pr"), "n_fake": 300}, "cd094ec1"),
    ({"names": ["fid"], "n_fake": 300, "kid_subset_size": 50, "is_splits": 5, "pr_k": 5}, "45e6e27c"),
    ({"names": ["pr", "is"], "n_fake": 20}, "968cbd56"),
]


@pytest.mark.parametrize(("options", "expected"), PRE_REGISTRY_IDS)
def test_protocol_ids_are_the_ones_from_before_the_registry(options, expected):
    evaluator = MetricEvaluator(cache_dir=None, **options)
    assert evaluator.record(real_stats(evaluator, torch.zeros(200, 128)))["protocol_id"] == expected


def test_a_new_metric_is_one_registered_class(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_metric
    class MeanGap(FeatureSetMetric):
        """|mean(fake) - mean(real)|^p over features: a toy metric with one setting."""

        name = "gap"
        settings = {"gap_p": 2}

        def score(self, real, fake):
            return {"val/gap": float((fake.mean(0) - real.mean(0)).abs().pow(self.options["gap_p"]).sum())}

    with pytest.raises(TypeError, match="already a setting of 'kid'"):
        register_metric(type("Clash", (QualityMetric,), {"name": "clash", "settings": {"kid_subsets": 1}}))
    evaluator = MetricEvaluator(names=["fid", "gap"], n_fake=4, cache_dir=None, gap_p=1)
    real = real_stats(evaluator, torch.zeros(4, 3, dtype=torch.float64))
    fake = torch.tensor([[1.0, 2.0, -3.0]]).expand(4, 3)
    assert evaluator.score(fake, torch.zeros(4, 10), real)["val/gap"] == pytest.approx(6.0)
    assert evaluator.protocol(real)["gap_p"] == 1
    # Registered but not selected: not in the protocol, so existing ids stay as they were.
    options, expected = PRE_REGISTRY_IDS[0]
    unselected = MetricEvaluator(cache_dir=None, **options)
    assert unselected.record(real_stats(unselected, torch.zeros(200, 128)))["protocol_id"] == expected


# ----------------------------------------------------------------------------- Inception Score
def test_inception_score_splits_at_i_n_over_splits_with_the_biased_std():
    # 7 confident images of 7 different classes: a split of s images scores exactly s, whatever the
    # shuffle. Boundaries i*7//3 give splits of 2, 2, 3 (torchmetrics' chunk would give 3, 3, 1).
    logits = 100.0 * torch.eye(7, dtype=torch.float64)
    mean, std = inception_score(logits, splits=3, seed=0)
    assert mean == pytest.approx(7 / 3, rel=1e-12)
    assert std == pytest.approx(math.sqrt(((2 - 7 / 3) ** 2 * 2 + (3 - 7 / 3) ** 2) / 3), rel=1e-12)


def test_inception_score_equals_torch_fidelity_and_refuses_too_few_images():
    logits = torch.randn(103, 1008, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    ours = inception_score(logits, splits=10, seed=7)
    reference = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=7)
    assert ours[0] == pytest.approx(reference["inception_score_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(reference["inception_score_std"], rel=1e-12)
    with pytest.raises(ValueError, match="needs at least 10 images; got 9"):
        inception_score(logits[:9], splits=10, seed=0)
    with pytest.raises(ValueError, match=r"is_splits=10 needs 1 <= is_splits <= n_fake \(n_fake=5\)"):
        MetricEvaluator(names=["is"], n_fake=5, cache_dir=None)
    MetricEvaluator(names=["fid"], n_fake=5, cache_dir=None)  # IS not selected: its splits do not matter


# ----------------------------------------------------------------------------- KID
def test_mmd_of_two_point_sets_by_hand():
    # d = 1, k(x, y) = (xy + 1)^3. Within X = {0, 1}: k(0, 1) = 1, twice; within Y = {2, 3}: 7^3 = 343,
    # twice; across: 1 + 1 + 27 + 64 = 93. Unbiased MMD^2 = (2 + 686) / (2 * 1) - 2 * 93 / 4 = 297.5.
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[2.0], [3.0]], dtype=torch.float64)
    assert mmd2_unbiased(x, y) == 297.5
    mean, std = kernel_inception_distance(y, x, subset_size=2, subsets=10, seed=0)
    assert mean == 297.5 and math.isnan(std)  # every subset is both whole sets: no spread to report


def test_kid_equals_torch_fidelity_on_the_same_features():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(120, 16, generator=gen, dtype=torch.float64)
    fake = torch.randn(150, 16, generator=gen, dtype=torch.float64) + 0.3
    ours = kernel_inception_distance(real, fake, subset_size=50, subsets=20, seed=3)
    # torch-fidelity's input1 is the generated set, input2 the real one.
    reference = kid_features_to_metric(
        fake, real, kid_subsets=20, kid_subset_size=50, rng_seed=3, verbose=False
    )
    assert ours[0] == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-10)
    assert ours[1] == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-10)


def test_kid_with_fewer_images_than_the_subset_size_warns_and_reports_nan_std(caplog):
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(40, 8, generator=gen, dtype=torch.float64)
    fake = torch.randn(40, 8, generator=gen, dtype=torch.float64)
    evaluator = MetricEvaluator(names=["kid"], n_fake=40, cache_dir=None, kid_subsets=10)
    real = real_stats(evaluator, features)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        result = evaluator.score(fake, torch.zeros(40, 10), real)
    assert "fewer than metrics.kid_subset_size=1000; subsets of 40 are used" in caplog.text
    assert "kid_std is NaN" in caplog.text
    assert math.isfinite(result["val/kid_mean"]) and math.isnan(result["val/kid_std"])
    assert evaluator.protocol(real)["kid_subset_size"] == 40
    # More generated than real images: the generated subsets differ, so the spread is real.
    more = MetricEvaluator(names=["kid"], n_fake=60, cache_dir=None, kid_subsets=10)
    spread = more.score(torch.randn(60, 8, generator=gen, dtype=torch.float64), torch.zeros(60, 10), real)
    assert spread["val/kid_std"] > 1e-6


def test_is_and_kid_draw_from_their_own_generators():
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(300, 16, generator=gen, dtype=torch.float64)
    logits = torch.randn(300, 10, generator=gen, dtype=torch.float64)
    options = {"n_fake": 300, "cache_dir": None, "kid_subset_size": 100, "kid_subsets": 10}
    alone = {name: MetricEvaluator(names=[name], **options) for name in ("is", "kid")}
    real = real_stats(alone["is"], torch.randn(200, 16, generator=gen, dtype=torch.float64))
    both = MetricEvaluator(names=["kid", "is", "fid", "pr"], **options).score(features, logits, real)
    torch.manual_seed(123)  # the global generator plays no part
    for evaluator in alone.values():
        for key, value in evaluator.score(features, logits, real).items():
            assert both[key] == value, key
    reference = isc_features_to_metric(logits, splits=10, rng_seed=0)
    assert both["val/is_mean"] == pytest.approx(reference["inception_score_mean"], rel=1e-12)

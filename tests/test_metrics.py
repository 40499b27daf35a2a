"""Quality metrics: closed forms, the scipy reference, caching, protocol records, CLI and offline failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from scipy import linalg
from torchmetrics.image.fid import FrechetInceptionDistance

from ganforge import evaluate
from ganforge.config import ConfigError
from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.metrics.features import INCEPTION_FILE, InceptionWeightsMissing, PrecomputedFeatures
from ganforge.metrics.precision_recall import precision_recall
from ganforge.metrics.scores.fid import load_fid_statistics
from ganforge.train import build_module, train
from tests.conftest import conf_options
from tests.helpers import write_images

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- FID
def fid_of(mu1, sigma1, mu2, sigma2, n: int = 1000) -> float:
    """FID computed by torchmetrics from states set to the given Gaussian statistics."""
    fid = FrechetInceptionDistance(PrecomputedFeatures(len(mu1)), reset_real_features=False)
    load_fid_statistics(fid, torch.as_tensor(mu1), torch.as_tensor(sigma1), n, real=True)
    load_fid_statistics(fid, torch.as_tensor(mu2), torch.as_tensor(sigma2), n, real=False)
    return float(fid.compute())


def reference_fid(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm`` with its eps fallback)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def test_fid_closed_forms():
    d = 16
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    eye = np.eye(d)
    assert fid_of(mu1, eye, mu2, eye) == pytest.approx(float(np.sum((mu1 - mu2) ** 2)), rel=1e-9)
    a, b = 0.5, 2.0
    assert fid_of(mu1, a**2 * eye, mu1, b**2 * eye) == pytest.approx(d * (a - b) ** 2, rel=1e-9)
    expected = float(np.sum((mu1 - mu2) ** 2)) + d * (a - b) ** 2
    assert fid_of(mu1, a**2 * eye, mu2, b**2 * eye) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_scipy_reference_on_random_spd():
    rng = np.random.default_rng(1)
    for d in (8, 64):
        m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        sigma1, sigma2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        ours = fid_of(mu1, sigma1, mu2, sigma2)
        assert ours == pytest.approx(reference_fid(mu1, sigma1, mu2, sigma2), rel=1e-6)


@pytest.fixture(scope="module")
def digits():
    """300 of scikit-learn's 8x8 digits in [-1, 1] (loads in milliseconds; the extractor resizes)."""
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().images[:300], dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0


def make_evaluator(tmp_path: Path, **kwargs) -> MetricEvaluator:
    options = {"n_fake": 300, "batch_size": 100, "cache_dir": str(tmp_path / "cache"), "kid_subsets": 20}
    return MetricEvaluator(**{**options, **kwargs})


def test_fid_of_a_set_with_itself_is_zero_and_cache_skips_reals(tmp_path, digits):
    evaluator = make_evaluator(tmp_path, names=["fid"])
    real = evaluator.real_statistics(digits.split(100), "digits-test")
    assert evaluator.real_extractions == 3 and real.mean.dtype == torch.float64 and real.n == 300
    assert abs(evaluator.evaluate(digits.split(100), real)["val/fid"]) < 1e-6
    # A second evaluator with the same protocol reads the cache: no real image is embedded again.
    again = make_evaluator(tmp_path, names=["fid"])
    cached = again.real_statistics(digits.split(100), "digits-test")
    assert again.real_extractions == 0 and torch.equal(cached.cov, real.cov)
    # A different key (another n_real) is computed afresh; a corrupt file is recomputed with a warning.
    other = make_evaluator(tmp_path, names=["fid"], n_real=200)
    assert other.real_statistics(digits.split(100), "digits-test").n == 200 and other.real_extractions == 2
    again.cache.path(again.key_fields("digits-test")).write_bytes(b"truncated")
    assert again.real_statistics(digits.split(100), "digits-test").n == 300 and again.real_extractions == 3


# ----------------------------------------------------------------------------- KID, IS, P/R
def gaussian_stats(features: torch.Tensor) -> RealStatistics:
    return RealStatistics.from_features(features, (1, 28, 28), {})


def test_kid_zero_for_one_distribution_positive_when_shifted(tmp_path):
    evaluator = make_evaluator(tmp_path, names=["kid"], kid_subset_size=200, n_fake=400)
    gen = torch.Generator().manual_seed(0)
    real = gaussian_stats(torch.randn(400, 128, generator=gen, dtype=torch.float64))
    same = torch.randn(400, 128, generator=gen, dtype=torch.float64)
    logits = torch.zeros(400, 10)
    kid_same = evaluator.score(same, logits, real)["val/kid_mean"]
    kid_shift = evaluator.score(same + 0.5, logits, real)["val/kid_mean"]
    assert abs(kid_same) < 0.01 < 0.1 < kid_shift
    assert evaluator.score(same, logits, real) == evaluator.score(same, logits, real)  # seeded subsets


def test_inception_score_bounds(tmp_path):
    evaluator = make_evaluator(tmp_path, names=["is"], is_splits=1)
    real = gaussian_stats(torch.randn(10, 128, dtype=torch.float64))
    features = torch.zeros(300, 128)
    identical = torch.randn(1, 10).expand(300, 10)
    assert evaluator.score(features, identical, real)["val/is_mean"] == pytest.approx(1.0, abs=1e-9)
    confident = 100.0 * torch.nn.functional.one_hot(torch.arange(300) % 10, 10).double()
    assert evaluator.score(features, confident, real)["val/is_mean"] == pytest.approx(10.0, rel=1e-9)


def test_precision_recall_on_known_point_clouds():
    line = torch.stack([torch.arange(100.0), torch.zeros(100)], dim=1)  # spacing 1: k=3 radius 2 (ends 3)
    assert precision_recall(line, line.clone()) == (1.0, 1.0)
    assert precision_recall(line, line + 1000.0) == (0.0, 0.0)
    # Half the fakes sit 0.5 above reals 0..49, half far away: precision 1/2. The fake balls (radius 2,
    # 3 at the ends of each line) cover reals 0..51: fake 49 at (49, 0.5) reaches real 51 at 2.06 < 3.
    fake = torch.cat([line[:50] + torch.tensor([0.0, 0.5]), line[:50] + 1000.0])
    precision, recall = precision_recall(line, fake)
    assert precision == pytest.approx(0.5) and recall == pytest.approx(0.52)


# ----------------------------------------------------------------------------- training and protocol
def test_training_records_protocol_best_checkpoint_and_eval_cli(tiny_cfg, tmp_path, capsys):
    cfg = tiny_cfg(
        [
            "data=digits",
            "metrics=domain",
            "metrics.n_fake=40",
            "metrics.n_real=40",
            "metrics.every_n_epochs=1",
            "metrics.kid_subsets=5",
            "trainer.max_epochs=2",
        ]
    )
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    record = json.loads((run / "metrics_protocol.json").read_text())
    assert record["protocol"]["n_real"] == 40 and record["protocol"]["extractor"] == "domain"
    assert record["protocol"]["weights_sha256"] and record["protocol"]["real_split"] == "val"
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    header, evals = rows[0], [r for r in rows[1:] if r[rows[0].index("val/fid")]]
    assert len(evals) == 2  # every epoch
    assert int(float(evals[-1][header.index("val/protocol_id")])) == int(record["protocol_id"], 16)
    assert float(evals[-1][header.index("val/fid")]) == pytest.approx(metrics["val/fid"])
    assert record["protocol_id"] in (run / "hparams.yaml").read_text()  # the dashboard's hparams
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["ganforge"]["metrics_protocol"] == record and "config" in best["ganforge"]
    fids = [float(r[header.index("val/fid")]) for r in evals]
    assert best["ganforge"]["metrics"]["val/fid"] == pytest.approx(min(fids))

    out = tmp_path / "eval.json"
    args = [f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "n_fake=40", "n_real=40", f"out={out}"]
    assert evaluate.main([*args, f"cache_dir={cfg.metrics.cache_dir}"]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"]["dataset_id"] == record["protocol"]["dataset_id"]
    assert report["results"]["val/fid"] >= 0 and "fid" in capsys.readouterr().out

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((run / "checkpoints" / "best.ckpt").read_bytes()[:200])
    assert evaluate.main([f"ckpt={broken}"]) == 1
    assert str(broken) in capsys.readouterr().err


def test_metric_fakes_split_across_ranks_equals_one_process(tiny_cfg):
    module = build_module(tiny_cfg(["model.num_classes=10"]), None)
    single = torch.cat(list(module.metric_fakes(10, 4, seed=3)))
    ranks = [torch.cat(list(module.metric_fakes(10, 4, seed=3, rank=r, world_size=2))) for r in (0, 1)]
    # Same latents and labels per index; only the batch composition (float summation order) differs.
    assert torch.allclose(single[0::2], ranks[0], atol=1e-5) and torch.allclose(
        single[1::2], ranks[1], atol=1e-5
    )
    assert not torch.equal(single, torch.cat(list(module.metric_fakes(10, 4, seed=4))))


def test_metric_options_compose_and_domain_refuses_non_digit_data(tiny_cfg, tmp_path, monkeypatch):
    assert set(conf_options("metrics")) >= {"domain", "inception", "none"}
    assert not tiny_cfg(["metrics=none"]).get("metrics")
    cfg = tiny_cfg(["metrics=domain", "data=cifar10"])
    callback = instantiate(cfg.metrics, _convert_="all")
    # a stand-in for the training scheme: what the metrics callback reads (the Scheme protocol)
    scheme = SimpleNamespace(
        iteration=0, g_steps=0, last_losses={}, run_config=None, metric_fakes=lambda *a: iter(())
    )
    trainer = SimpleNamespace(datamodule=instantiate(cfg.data))
    with pytest.raises(ConfigError, match="metrics=inception"):
        callback.setup(trainer, scheme, "fit")
    trainer = SimpleNamespace(datamodule=instantiate(tiny_cfg(["data=ring8", "model=mlp"]).data))
    with pytest.raises(ConfigError, match="holds 2-D points .* use metrics=none"):
        callback.setup(trainer, scheme, "fit")
    with pytest.raises(ConfigError, match="needs Scheme .* lacks g_steps"):
        callback.setup(
            trainer, SimpleNamespace(iteration=0, last_losses={}, run_config=None, metric_fakes=None), "fit"
        )
    # Offline without the Inception weights, the run stops before training and says where to put them.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cfg = tiny_cfg(["metrics=inception", "data=digits"])
    with pytest.raises(InceptionWeightsMissing) as err:
        train(cfg)
    assert INCEPTION_FILE in str(err.value) and str(tmp_path / "torch_home" / "hub" / "checkpoints") in str(
        err.value
    )
    assert "metrics.weights_path" in str(err.value)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_eval_cli_on_two_folders(tmp_path):
    real = write_images(tmp_path / "real", n=12, size=20, mode="L")
    fake = write_images(tmp_path / "fake", n=12, size=24, mode="RGB")
    out = tmp_path / "folders.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ganforge.evaluate", f"real={real}", f"fake={fake}", f"out={out}"]
    proc = subprocess.run(
        [*cmd, f"cache_dir={tmp_path / 'cache'}"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["protocol"]["n_real"] == 12 and report["protocol"]["n_fake"] == 12
    assert report["protocol"]["img_size"] == 20 and report["protocol"]["channels"] == 1
    assert set(report["results"]) >= {"val/fid", "val/kid_mean", "val/is_mean", "val/precision"}
    assert "protocol" in proc.stdout and "fid" in proc.stdout


def test_inception_extractor_loads_weights_from_the_hub_cache(tmp_path, monkeypatch):
    """The real loading path, with randomly initialised weights saved under the expected file name."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ganforge.metrics.features import build_extractor, file_sha256

    with monkeypatch.context() as patch:  # build the architecture once without any weights file
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        patch.setattr(
            "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {}
        )
        state = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = tmp_path / "hub" / "checkpoints" / INCEPTION_FILE
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)
    extractor = build_extractor("inception")
    assert extractor.weights_sha256 == file_sha256(weights) and extractor.resize == "tf1-bilinear-299"
    features, logits = extractor.extract(torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8))
    assert features.shape == (2, 2048) and logits.shape == (2, 1008) and features.dtype == torch.float64

"""Metrics beyond FID: density/coverage, FD in DINOv2 and CLIP features, intra-class FID."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from sklearn.metrics import pairwise_distances

from ganforge import evaluate
from ganforge.config import ConfigError
from ganforge.metrics.cache import RealStatistics
from ganforge.metrics.density_coverage import density_coverage
from ganforge.metrics.evaluator import MetricEvaluator, metric_fake_labels
from ganforge.metrics.features import (
    DINOV2_REPO_FOLDER,
    WeightsMissing,
    build_extractor,
    file_sha256,
)
from ganforge.metrics.scores.fid_intra import intra_class_fid
from ganforge.train import build_module, train
from tests.conftest import conf_options


def reference_density_coverage(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """The density and coverage lines of ``prdc.compute_prdc`` (clovaai/generative-evaluation-prdc)."""
    real_real = pairwise_distances(real, real)
    idx = np.argpartition(real_real, k + 1, axis=-1)[..., : k + 1]
    radii = np.take_along_axis(real_real, idx, axis=-1).max(axis=-1)
    real_fake = pairwise_distances(real, fake)
    density = (1.0 / k) * (real_fake < radii[:, None]).sum(axis=0).mean()
    coverage = (real_fake.min(axis=1) < radii).mean()
    return float(density), float(coverage)


# ----------------------------------------------------------------------------- density / coverage
def test_density_coverage_on_constructed_clouds():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=gen, dtype=torch.float64)
    # Fakes = reals: every ball holds its centre and the k-1 nearer neighbours, so density is
    # k*N/(k*N) = 1 exactly and every ball is covered.
    assert density_coverage(real, real, k=5, block=64) == (1.0, 1.0)
    assert density_coverage(real, real + 100.0, k=5) == (0.0, 0.0)  # far away: no ball holds a fake
    # By hand, k = 2, reals on a line at 0, 1, 3, 6, 10: 2nd-neighbour radii 3, 2, 3, 4, 7.
    line = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=torch.float64)
    # 0.5 lies in the balls of 0, 1, 3; 2.5 in those of 0, 1, 3, 6; 20 in none: 7 memberships over
    # k*M = 6, and the balls of 0, 1, 3, 6 (not 10) hold a fake.
    fakes = torch.tensor([[0.5], [2.5], [20.0]], dtype=torch.float64)
    assert density_coverage(line, fakes, k=2) == (pytest.approx(7 / 6), pytest.approx(4 / 5))
    # Balls are open, as in prdc: 17 sits on the boundary of 10's ball (radius 7), 16.9 inside.
    on_boundary = torch.tensor([[0.5], [2.5], [20.0], [17.0]], dtype=torch.float64)
    assert density_coverage(line, on_boundary, k=2) == (pytest.approx(7 / 8), pytest.approx(4 / 5))
    inside = torch.tensor([[0.5], [2.5], [16.9]], dtype=torch.float64)
    assert density_coverage(line, inside, k=2) == (pytest.approx(8 / 6), pytest.approx(1.0))


@pytest.mark.parametrize(("n_real", "n_fake", "d", "shift"), [(300, 200, 16, 0.0), (150, 400, 32, 0.4)])
def test_density_coverage_equal_the_official_formulas(n_real, n_fake, d, shift):
    rng = np.random.default_rng(n_real)
    real, fake = rng.normal(size=(n_real, d)), rng.normal(size=(n_fake, d)) + shift
    ours = density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k=5, block=100)
    expected = reference_density_coverage(real, fake, 5)
    assert ours[0] == pytest.approx(expected[0], rel=1e-12) and ours[1] == pytest.approx(
        expected[1], rel=1e-12
    )


def test_dc_is_a_registered_metric_with_its_k_in_the_protocol():
    evaluator = MetricEvaluator(names=["fid", "dc"], n_fake=200, cache_dir=None, dc_k=3)
    gen = torch.Generator().manual_seed(1)
    real = RealStatistics.from_features(
        torch.randn(300, 128, generator=gen, dtype=torch.float64), (1, 28, 28), evaluator.key_fields("x")
    )
    fake = torch.randn(200, 128, generator=gen, dtype=torch.float64)
    values = evaluator.score(fake, torch.zeros(200, 10), real)
    assert (values["val/density"], values["val/coverage"]) == density_coverage(real.features, fake, k=3)
    assert evaluator.protocol(real)["dc_k"] == 3
    assert "dc_k" not in MetricEvaluator(names=["fid"], n_fake=200, cache_dir=None).protocol(real)
    other = MetricEvaluator(names=["fid", "dc"], n_fake=200, cache_dir=None)
    assert other.record(real)["protocol_id"] != evaluator.record(real)["protocol_id"]
    with pytest.raises(ValueError, match="metrics.dc_k must be >= 1"):
        MetricEvaluator(names=["dc"], cache_dir=None, dc_k=0)


# ----------------------------------------------------------------------------- intra-class FID
def test_intra_class_fid_of_identical_and_shifted_classes():
    gen = torch.Generator().manual_seed(2)
    real = torch.randn(60, 4, generator=gen, dtype=torch.float64)
    labels = torch.arange(60) % 3
    assert intra_class_fid(real, labels, real, labels) == pytest.approx({0: 0.0, 1: 0.0, 2: 0.0}, abs=1e-6)
    # Class 1 shifted by delta: equal covariances, so its FID is |delta|^2 = 4 exactly.
    fake = real.clone()
    fake[labels == 1] += torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    per_class = intra_class_fid(real, labels, fake, labels)
    assert per_class == pytest.approx({0: 0.0, 1: 4.0, 2: 0.0}, abs=1e-6)
    evaluator = MetricEvaluator(names=["fid_intra"], n_fake=60, cache_dir=None)
    stats = RealStatistics.from_features(real, (1, 28, 28), {}, labels)
    values = evaluator.score(fake, torch.zeros(60, 10), stats, labels=labels)
    assert values == {"val/fid_intra": pytest.approx(4.0 / 3, abs=1e-6)}
    assert evaluator.details["fid_intra_per_class"] == pytest.approx({"0": 0.0, "1": 4.0, "2": 0.0}, abs=1e-6)
    with pytest.raises(ValueError, match="class 2 has 20 real and 1 generated"):
        intra_class_fid(real, labels, fake[:6], labels[:6] % 2 + (torch.arange(6) == 5) * 2)
    with pytest.raises(ValueError, match="needs the generated images' class labels"):
        evaluator.score(fake, torch.zeros(60, 10), stats)


def test_conditional_run_logs_intra_class_fid_and_eval_writes_per_class_values(tiny_cfg, tmp_path):
    overrides = [
        "experiment=sngan_cond_mnist5k",
        "metrics=domain",
        "metrics.names=[fid,fid_intra]",
        "metrics.n_fake=60",
        "metrics.n_real=200",
        "metrics.every_n_epochs=1",
        "metrics.batch_size=60",
    ]
    cfg = tiny_cfg(overrides)
    run = Path(cfg.paths.output_dir)
    train(cfg)
    details = json.loads((run / "metrics_details.json").read_text())
    assert sorted(details["fid_intra_per_class"], key=int) == [str(c) for c in range(10)]
    mean = np.mean(list(details["fid_intra_per_class"].values()))
    csv = (run / "metrics.csv").read_text().splitlines()
    header, row = (
        csv[0].split(","),
        [r for r in csv[1:] if r.split(",")[csv[0].split(",").index("val/fid_intra")]][-1],
    )
    assert float(row.split(",")[header.index("val/fid_intra")]) == pytest.approx(mean, rel=1e-6)
    assert details["protocol_id"] == json.loads((run / "metrics_protocol.json").read_text())["protocol_id"]
    # ganforge-eval scores the checkpoint the same way and writes the per-class values to its JSON.
    out = tmp_path / "eval.json"
    args = [f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "names=fid,fid_intra", "n_fake=60", "n_real=200"]
    assert evaluate.main([*args, f"cache_dir={tmp_path / 'cache'}", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert report["results"]["val/fid_intra"] == pytest.approx(
        np.mean(list(report["fid_intra_per_class"].values()))
    )
    assert len(report["fid_intra_per_class"]) == 10
    # An unconditional model is refused before training.
    cfg = tiny_cfg(["metrics=domain", "metrics.names=[fid,fid_intra]"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "unconditional")
    with pytest.raises(ConfigError, match=r"\['fid_intra'\] compare classes .* conditional model"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_fake_labels_are_those_metric_fakes_draws(tiny_cfg):
    module = build_module(tiny_cfg(["experiment=sngan_cond_mnist5k"]), None).eval()
    single = torch.cat(list(module.metric_fakes(12, 5, seed=3)))
    labels = metric_fake_labels(12, module.num_classes)
    z = torch.randn(12, module.latent_dim, generator=torch.Generator().manual_seed(3))
    assert (single - module.generate(z, labels)).abs().max() < 1e-5  # batches of 5 vs one of 12
    assert torch.equal(metric_fake_labels(12, 10, rank=1, world_size=2), torch.arange(1, 12, 2) % 10)


# ----------------------------------------------------------------------------- DINOv2 / CLIP
@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


@pytest.fixture(scope="module")
def digit_images():
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().images[:40], dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0


def test_dinov2_and_clip_are_refused_offline_naming_the_files(torch_home, tiny_cfg):
    hub = torch_home / "hub"
    with pytest.raises(WeightsMissing) as err:
        build_extractor("dinov2")
    message = str(err.value)
    assert str(hub / DINOV2_REPO_FOLDER) in message and "dinov2_vitl14_pretrain.pth" in message
    assert str(hub / "checkpoints") in message and "metrics.weights_path" in message
    with pytest.raises(WeightsMissing, match=r"clip-vit-b-32-40d36571\w+\.pt are not in .*hub/checkpoints"):
        build_extractor("clip")
    assert {"dinov2", "clip"} <= set(conf_options("metrics"))
    for option in ("dinov2", "clip"):  # the run stops before training
        cfg = tiny_cfg([f"metrics={option}", "data=digits"])
        with pytest.raises(WeightsMissing):
            train(cfg)
        assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
    assert evaluate.main(["real=a", "fake=b", "extractor=dinov2"]) == 1
    with pytest.raises(ValueError, match=r"\['is'\] need class logits, which extractor 'clip' does not give"):
        MetricEvaluator(names=["fid", "is"], extractor="clip", cache_dir=None)


FAKE_HUBCONF = '''
import torch
from torch import nn

dependencies = ["torch"]


class TinyViT(nn.Module):
    """A stand-in with DINOv2's interface: 224 px images in, an ``embed_dim`` CLS vector out."""

    def __init__(self):
        super().__init__()
        self.embed_dim = 24
        self.patch_embed = nn.Conv2d(3, 24, 14, 14)
        self.norm = nn.LayerNorm(24)

    def forward(self, x):
        assert x.shape[-2:] == (224, 224)
        return self.norm(self.patch_embed(x).mean(dim=(2, 3)))


def dinov2_vitl14(pretrained=True, **kwargs):
    assert not pretrained, "ganforge loads the weights itself"
    return TinyViT()
'''


def test_dinov2_path_builds_from_local_code_and_weights_and_gives_fd(torch_home, digit_images, tmp_path):
    """The loading path end to end with a stand-in hub repository (the real code is not on CI)."""
    repo = torch_home / "hub" / DINOV2_REPO_FOLDER
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text(FAKE_HUBCONF)
    with pytest.raises(WeightsMissing, match="dinov2_vitl14_pretrain.pth are not in") as err:
        build_extractor("dinov2")
    assert DINOV2_REPO_FOLDER not in str(err.value)  # only what is missing is named
    torch.manual_seed(0)
    state = torch.hub.load(str(repo), "dinov2_vitl14", source="local", pretrained=False).state_dict()
    weights = torch_home / "hub" / "checkpoints" / "dinov2_vitl14_pretrain.pth"
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)
    evaluator = MetricEvaluator(names=["fid", "kid", "pr", "dc"], extractor="dinov2", n_fake=40,
                                batch_size=20, cache_dir=str(tmp_path / "cache"), kid_subsets=5)  # fmt: skip
    extractor = evaluator.extractor
    assert (extractor.name, extractor.resize, extractor.num_features) == (
        "dinov2-vit-l-14",
        "tf1-bilinear-224",
        24,
    )
    assert extractor.weights_sha256 == file_sha256(weights)
    features, logits = extractor.extract(torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8))
    assert features.shape == (3, 24) and logits.shape == (3, 0) and features.dtype == torch.float64
    real = evaluator.real_statistics(digit_images.split(20), "digits40")
    values = evaluator.evaluate(digit_images.split(20), real)
    assert abs(values["val/fid"]) < 1e-6 and values["val/coverage"] == 1.0
    assert evaluator.evaluate((-digit_images).split(20), real)["val/fid"] > 1.0
    protocol = evaluator.protocol(real)
    assert protocol["extractor"] == "dinov2-vit-l-14" and protocol["weights_sha256"] == file_sha256(weights)


DINOV2_CODE = os.environ.get("GANFORGE_DINOV2_REPO")  # a checkout of facebookresearch/dinov2


@pytest.mark.skipif(not DINOV2_CODE, reason="GANFORGE_DINOV2_REPO (facebookresearch/dinov2 code) not set")
def test_dinov2_vit_s14_architecture_with_random_weights(torch_home):
    """The real DINOv2 ViT-S/14 from the repository's code, random weights saved as the weights file."""
    hub = torch_home / "hub"
    hub.mkdir(parents=True)
    (hub / DINOV2_REPO_FOLDER).symlink_to(Path(DINOV2_CODE).resolve())
    net = torch.hub.load(str(hub / DINOV2_REPO_FOLDER), "dinov2_vits14", source="local", pretrained=False)
    (hub / "checkpoints").mkdir()
    torch.save(net.state_dict(), hub / "checkpoints" / "dinov2_vits14_pretrain.pth")
    extractor = build_extractor("dinov2-vit-s-14")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    features, _ = extractor.extract(images)
    assert features.shape == (2, 384) and torch.isfinite(features).all()


def test_clip_vit_b32_with_random_weights_gives_fd(torch_home, digit_images, tmp_path):
    """torch-fidelity's CLIP ViT-B/32 from a TorchScript file of random weights under its cache name."""
    from torch import nn
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, VisionTransformer, convert_weights

    class CLIPWeights(nn.Module):  # the keys torch-fidelity reads from OpenAI's file
        def __init__(self):
            super().__init__()
            self.visual = VisionTransformer(224, 32, 768, 12, 12, 512)
            self.text_projection = nn.Parameter(torch.randn(512, 512))

        def forward(self, x):
            return x

    torch.manual_seed(0)
    holder = CLIPWeights()
    convert_weights(holder)  # fp16, as OpenAI ships them
    path = torch_home / "hub" / "checkpoints" / f"clip-vit-b-32-{MODEL_METADATA['clip-vit-b-32']['hash']}.pt"
    path.parent.mkdir(parents=True)
    with pytest.warns(FutureWarning):  # torch.jit is deprecated, but OpenAI's files are TorchScript
        torch.jit.save(torch.jit.trace(holder, torch.zeros(1)), str(path))
    evaluator = MetricEvaluator(
        names=["fid", "dc"], extractor="clip", n_fake=12, batch_size=12, cache_dir=None
    )
    extractor = evaluator.extractor
    assert (extractor.name, extractor.resize, extractor.num_features) == (
        "clip-vit-b-32",
        "tf1-bilinear-224",
        512,
    )
    assert extractor.weights_sha256 == file_sha256(path)
    images = digit_images[:12]  # ViT-B/32 costs 4.4 GFLOP per image
    real = evaluator.real_statistics([images], "digits12")
    assert real.features.shape == (12, 512)
    same, flipped = evaluator.evaluate([images], real), evaluator.evaluate([images.flip(-1)], real)
    assert abs(same["val/fid"]) < 1e-4 < 0.01 < flipped["val/fid"]  # float32 features: FD(x, x) ~ 1e-5
    assert same["val/coverage"] == 1.0

"""CUT / FastCUT: PatchNCE on known values, patch sampling, heads, flip equivariance, training and translate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ConfigError
from ganforge.losses.patchnce import (
    CUTObjective,
    PatchHeads,
    gather_patches,
    patch_nce_logits,
    patch_nce_loss,
    sample_patch_ids,
)
from ganforge.modules.cut import CUTModule
from ganforge.networks.patchgan import PatchDiscriminator
from ganforge.networks.resnet_translator import ResnetTranslator
from ganforge.networks.unet import UNetGenerator
from ganforge.train import build_module, train
from ganforge.translate import main as translate_main
from ganforge.translate import translate_files
from ganforge.utils.checkpoint import load_checkpoint
from tests.conftest import TINY_UNPAIRED

TINY_CUT = [
    *TINY_UNPAIRED,
    "loss.nce_layers=[input,down1,down2,block1]",  # one residual block: no block5
    "loss.num_patches=16",
]


def nll(logits: list[float], temperature: float) -> float:
    """-log softmax(logits / T)[0], written out."""
    exps = [math.exp(v / temperature) for v in logits]
    return -math.log(exps[0] / sum(exps))


def test_patch_nce_loss_on_hand_built_features():
    # one image, three unit-vector patches; the keys equal the queries
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    # row j: positive q_j . k_j, then q_j . k_m for every m (own column -10)
    rows = [[1.0, -10.0, 0.0, -1.0], [1.0, 0.0, -10.0, 0.0], [1.0, -1.0, 0.0, -10.0]]
    logits = patch_nce_logits(q, q.clone(), n_images=1, temperature=t)
    assert torch.allclose(logits, torch.tensor(rows) / t)
    expected = sum(nll(r, t) for r in rows) / 3
    assert patch_nce_loss(q, q.clone(), 1, t).item() == pytest.approx(expected, rel=1e-6)
    # a worse query (patch 0 points at patch 2's key) costs more, by the known amount
    worse = q.clone()
    worse[0] = torch.tensor([-1.0, 0.0])
    rows[0] = [-1.0, -10.0, 0.0, 1.0]
    assert patch_nce_loss(worse, q, 1, t).item() == pytest.approx(sum(nll(r, t) for r in rows) / 3, rel=1e-6)


def test_negatives_come_from_the_same_image_only():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2 * 5, 8), dim=1)
    k = torch.nn.functional.normalize(torch.randn(2 * 5, 8), dim=1)
    both = patch_nce_loss(q, k, n_images=2, temperature=0.07)
    each = [patch_nce_loss(q[i * 5 : i * 5 + 5], k[i * 5 : i * 5 + 5], 1, 0.07) for i in range(2)]
    assert both.item() == pytest.approx(sum(each).item() / 2, rel=1e-6)


def test_keys_get_no_gradient():
    q = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    patch_nce_loss(q, k, 1, 0.07).backward()
    assert q.grad is not None and k.grad is None


def test_patch_sampling_and_gathering():
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 4, 5), torch.randn(2, 6, 2, 2)]
    ids = sample_patch_ids(feats, num_patches=8)
    assert [len(i) for i in ids] == [8, 4]  # at most H * W locations
    assert len(set(ids[0].tolist())) == 8 and int(ids[0].max()) < 20
    rows = gather_patches(feats[0], ids[0])
    assert rows.shape == (2 * 8, 3)
    b, j = 1, 3  # image-major: row b * P + j is image b at location ids[j] = y * W + x
    y, x = divmod(int(ids[0][j]), 5)
    assert torch.equal(rows[b * 8 + j], feats[0][b, :, y, x])


def test_heads_shapes_normalisation_and_init():
    heads = PatchHeads([3, 16], width=32)
    feats = [torch.randn(2, 3, 8, 8), torch.randn(2, 16, 4, 4)]
    ids = [torch.arange(5), torch.arange(7)]
    out = heads(feats, ids)
    assert [tuple(o.shape) for o in out] == [(10, 32), (14, 32)]
    # unit rows, up to the 1e-7 the normalisation adds to norms of ~1e-3 at this tiny initialisation
    assert all(torch.allclose(o.norm(dim=1), torch.ones(len(o)), atol=1e-3) for o in out)
    linear = heads.mlps[1][0]
    assert linear.weight.shape == (32, 16) and not linear.bias.any()
    assert linear.weight.std().item() == pytest.approx(0.02 * math.sqrt(2 / (16 + 32)), rel=0.3)


def test_a_silent_head_on_identical_query_and_key_keeps_finite_gradients():
    # A translator that returns its input exactly (residual=true at the start) gives queries equal
    # to their keys; on a flat black patch every ReLU of the head can be off, so the projected row
    # is all zeros. Its normalisation must not turn the gradient into nan.
    heads = PatchHeads([3], width=8)
    with torch.no_grad():
        heads.mlps[0][0].weight.fill_(0.1)  # W x < 0 for x = (-1, -1, -1): every unit off
    patch = -torch.ones(1, 3, 4, 4)
    ids = sample_patch_ids([patch], 4)
    (query,), (key,) = heads([patch], ids), heads([patch], ids)
    assert not query.any()
    patch_nce_loss(query, key, 1, 0.07).backward()
    assert all(torch.isfinite(p.grad).all() for p in heads.parameters())


def make_module(layers=("input", "down1", "block1")) -> CUTModule:
    torch.manual_seed(0)
    generator = ResnetTranslator(1, width=4, n_blocks=1, antialias=True)
    objective = CUTObjective(nce_layers=list(layers), num_patches=16)
    return CUTModule(generator, PatchDiscriminator(1, 4, 2), objective, {}, head_width=8)


def test_queries_and_keys_share_the_patch_locations(monkeypatch):
    module = make_module()
    calls = []
    forward = module.heads.forward
    monkeypatch.setattr(
        module.heads, "forward", lambda f, ids: calls.append((ids, forward(f, ids))) or calls[-1][1]
    )
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    module.nce_loss(x, x.clone(), flipped=False)  # a translation equal to its source
    (key_ids, keys), (query_ids, queries) = calls
    assert all(torch.equal(k, q) for k, q in zip(key_ids, query_ids, strict=True))
    assert [len(i) for i in key_ids] == [16, 16, 16]
    # same locations, same features: every query is its own key
    assert all(torch.allclose(k, q) for k, q in zip(keys, queries, strict=True))


def test_flip_equivariance_flips_the_query_features_back():
    module = make_module(layers=["input"])
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    torch.manual_seed(1)
    same = module.nce_loss(x, x, flipped=False)
    torch.manual_seed(1)  # the same patch locations
    flipped_back = module.nce_loss(x, x.flip(3), flipped=True)
    torch.manual_seed(1)
    not_flipped_back = module.nce_loss(x, x.flip(3), flipped=False)
    # the reflect-padded input is flip-equivariant: flipping its features back restores the source's
    assert flipped_back.item() == pytest.approx(same.item(), rel=1e-6)
    assert not_flipped_back.item() > same.item() + 0.1


def test_antialiased_translator_keeps_sizes_and_names_its_feature_points():
    net = ResnetTranslator(3, width=4, n_blocks=5, antialias=True)
    x = torch.rand(1, 3, 20, 24)
    assert net(x).shape == x.shape
    points = ["input", "down1", "down2", "block1", "block5"]
    assert [net.feature_points[p] for p in points] == [0, 4, 8, 12, 16]  # the CUT code's --nce_layers
    shapes = [tuple(f.shape[1:]) for f in net.encode(x, points)]
    assert shapes == [(3, 26, 30), (8, 20, 24), (16, 10, 12), (16, 5, 6), (16, 5, 6)]
    plain = ResnetTranslator(3, width=4, n_blocks=5)
    assert [plain.feature_points[p] for p in points] == [0, 4, 7, 10, 14]
    with pytest.raises(ValueError, match="valid: input, down1, down2, block1"):
        net.encode(x, ["block9"])


@pytest.mark.parametrize("antialias", [True, False])
def test_translator_without_downsampling_runs_its_blocks_at_full_resolution(antialias):
    torch.manual_seed(0)
    net = ResnetTranslator(3, width=4, n_blocks=2, antialias=antialias, n_downsampling=0, residual=True)
    x = torch.rand(1, 3, 7, 9) * 2 - 1  # any size: nothing to halve
    assert net.size_multiple == 1 and net(x).shape == x.shape
    assert list(net.feature_points) == ["input", "block1", "block2"]
    assert [tuple(f.shape[1:]) for f in net.encode(x, ["block1", "block2"])] == [(4, 7, 9)] * 2
    with pytest.raises(ValueError, match="unknown feature point 'down1'.*valid: input, block1, block2"):
        net.encode(x, ["down1"])
    # one output pixel depends on a window of the input (no instance norm here: its statistics
    # span the image): 7x7 stem + 2 blocks of two 3x3 convolutions + the 7x7 last layer = 21 pixels
    local = ResnetTranslator(3, width=4, n_blocks=2, norm="none", n_downsampling=0, residual=True)
    local.residual.layer.weight.data.normal_()  # the zero-initialised last layer would pass no gradient
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).mul(0.5).requires_grad_()
    local(x)[0, :, 16, 16].sum().backward()
    touched = x.grad[0].abs().sum(0).nonzero()
    assert touched.min(0).values.tolist() == [6, 6] and touched.max(0).values.tolist() == [26, 26]
    one = ResnetTranslator(3, width=4, n_blocks=1, n_downsampling=1)
    assert one.size_multiple == 2 and list(one.feature_points)[:3] == ["input", "down1", "block1"]
    with pytest.raises(ValueError, match="n_downsampling must be >= 0"):
        ResnetTranslator(3, n_downsampling=-1)


def test_cut_and_fastcut_configs_compose(tiny_cfg):
    for name, lambda_nce, identity, flip in (("cut", 1.0, True, False), ("fastcut", 10.0, False, True)):
        module = build_module(tiny_cfg([f"model={name}", f"loss={name}", "data=digits2mnist"]), None)
        obj = module.objective
        assert module.scheme == "cut" and module.generator.feature_points["down2"] == 8  # antialiased
        assert (obj.lambda_nce, obj.nce_identity, obj.flip_equivariance) == (lambda_nce, identity, flip)
        assert (obj.lambda_gan, obj.num_patches, obj.temperature, obj.gan_mode) == (1.0, 256, 0.07, "lsgan")
        assert obj.nce_layers == ["input", "down1", "down2", "block1", "block5"]
        assert module.heads.mlps[0][0].out_features == 256
    full = build_module(
        tiny_cfg(
            [
                "model=cut",
                "loss=cut",
                "data=digits2mnist",
                "model.generator.n_downsampling=0",
                "loss.nce_layers=[input,block1,block5]",
            ]
        ),
        None,
    )
    width = full.generator.net[1].out_channels  # the 7x7 stem's
    assert [mlp[0].in_features for mlp in full.heads.mlps] == [1, width, width]  # no doubling: no halving


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=cyclegan"], "model=cut / model=fastcut needs loss=cut or loss=fastcut"),
        (["loss=cut", "loss.nce_layers=[input,block12]"], "loss.nce_layers: unknown feature point 'block12'"),
        (["loss=cut", "+loss.lambda_cycle=10"], "loss.lambda_cycle has no part in CUT"),
        (["loss=cut", "model.generator.n_downsampling=0"], "loss.nce_layers: unknown feature point 'down1'"),
        (["loss=cut", "model.compile=aot_eager", "model.channels_last=true"], "cannot combine model.compile"),
    ],
)
def test_wrong_loss_or_layers_are_refused_by_name(tiny_cfg, overrides, message):
    cfg = tiny_cfg(["model=cut", "data=digits2mnist", *overrides])
    with pytest.raises(ConfigError, match=message):
        build_module(cfg, None)


def test_a_generator_without_encoder_features_is_refused():
    with pytest.raises(ConfigError, match="must be the ResNet translator"):
        CUTModule(UNetGenerator(1, 32, width=4), PatchDiscriminator(1, 4, 2), CUTObjective(), {})


@pytest.mark.parametrize(("name", "columns"), [("cut", 4), ("fastcut", 3)])
def test_cut_and_fastcut_train_and_translate_from_the_checkpoint(tiny_cfg, tmp_path, capsys, name, columns):
    metrics = train(
        tiny_cfg([f"model={name}", f"loss={name}", *TINY_CUT, "loss.lambda_tv=0.5", "loss.lambda_content=1"])
    )
    run = tmp_path / "run"
    for key in (
        "train/g_loss",
        "train/d_loss",
        "train/g_adv",
        "train/nce",
        "train/tv",
        "train/content",
        "val/label_acc",
    ):
        assert np.isfinite(metrics[key]), key
    assert ("train/nce_identity" in metrics) == (name == "cut")
    panel = np.asarray(Image.open(run / "panels/last.png"))
    assert panel.shape[1] == columns * 18 + 2  # A | G(A) | B (| G(B) for CUT), 16 px each
    ckpt = load_checkpoint(run / "checkpoints/last.ckpt")
    assert ckpt["ganforge"]["scheme"] == "cut" and ckpt["ganforge"]["iteration"] == 2

    image = np.random.default_rng(0).integers(0, 255, (21, 13), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    written = translate_files(run / "checkpoints/last.ckpt", tmp_path / "a.png", tmp_path / "out")
    assert [p.name for p in written] == ["a.png"] and Image.open(written[0]).size == (13, 21)
    with pytest.raises(SystemExit) as stop:  # the console entry point: one message, exit status 2
        translate_main(
            [f"ckpt={run / 'checkpoints/last.ckpt'}", f"input={tmp_path}", "out=x", "direction=BtoA"]
        )
    assert stop.value.code == 2 and "translates AtoB only" in capsys.readouterr().err

"""StyleGAN2: the modulated convolution, path length, truncation, style mixing, presets, training and export."""

from __future__ import annotations

import json
import math

import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from ganforge.config import ConfigError
from ganforge.evaluate import evaluate_checkpoint, parse_args
from ganforge.export import export_generator
from ganforge.generate import generate
from ganforge.losses.regularizers import PathLengthPenalty, path_lengths
from ganforge.modules.ema import half_life_beta
from ganforge.networks.stylegan2 import (
    EqualizedLinear,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    fir_filter,
    fir_filter_depthwise,
    fir_filter_separable,
    lowpass_filter,
    mix_styles,
    modulated_conv2d,
)
from ganforge.reporting.truncation import report_sweep
from ganforge.train import build_module, train
from ganforge.utils.checkpoint import load_checkpoint, load_generator
from tests.conftest import compose_tiny

# A few-kilo-parameter StyleGAN2 at 16 px: 4 resolutions, 16 channels, 2 mapping layers.
TINY = [
    "model=stylegan2",
    "loss=stylegan2",
    "data=digits",
    "data.img_size=16",
    "model.latent_dim=16",
    "model.generator.w_dim=16",
    "model.generator.mapping_layers=2",
    "model.generator.channel_base=128",
    "model.generator.channel_max=16",
    "model.ema_half_life_kimg=0.1",
    "trainer.limit_val_batches=0",
    "++trainer.limit_train_batches=4",
    "loss.penalties.r1.every=2",  # both lazy regularizers run within the 4 iterations
    "loss.g_penalties.path_length.every=2",
]


def tiny_generator(**kwargs) -> StyleGAN2Generator:
    torch.manual_seed(0)
    args = dict(
        latent_dim=8, img_size=8, channels=1, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8
    )
    return StyleGAN2Generator(**{**args, **kwargs})


# ----------------------------------------------------------------- the network's maths
def per_sample_weights(weight, styles, demodulate):
    w = weight[None] * styles[:, None, :, None, None]
    return w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt() if demodulate else w


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_convolution_with_each_samples_scaled_weights(demodulate):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 6, 6), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate)
    w = per_sample_weights(weight, styles, demodulate)
    expected = torch.cat([F.conv2d(x[n : n + 1], w[n], padding=1) for n in range(3)])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if demodulate:  # each output channel's per-sample weights have unit norm
        torch.testing.assert_close(w.square().sum(dim=[2, 3, 4]), torch.ones(3, 4), rtol=1e-5, atol=1e-5)


def test_upsampling_modulated_conv_equals_zero_insertion_filter_then_conv():
    torch.manual_seed(1)
    x, weight, styles = torch.randn(2, 3, 4, 4), torch.randn(5, 3, 3, 3), torch.randn(2, 3)
    f = lowpass_filter()
    got = modulated_conv2d(x, weight, styles, up=True, resample_filter=f)
    up = torch.zeros(2, 3, 8, 8)
    up[:, :, ::2, ::2] = x  # zeros between the samples
    up = fir_filter(up, f, (3, 2), gain=4.0)  # the whole operation's padding, applied once
    w = per_sample_weights(weight, styles, True)
    # A transposed convolution convolves (flipped kernel) rather than correlates, as stylegan2-ada's
    # up-sampling layers do (their flip_weight=False).
    expected = torch.cat([F.conv2d(up[n : n + 1], w[n].flip([2, 3])) for n in range(2)])
    assert got.shape == (2, 5, 8, 8)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_equalized_linear_scales_its_weights_at_run_time():
    layer = EqualizedLinear(9, 4, lr_mult=0.01)
    x = torch.randn(2, 9)
    expected = x @ (layer.weight * 0.01 / 3).T + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    assert layer.weight.std() > 10  # stored N(0, 1) / lr_mult: the optimizer sees equal scales


class LinearGenerator(nn.Module):
    """``images = A @ vec(ws)``: the Jacobian of the image w.r.t. ``ws`` is ``A``."""

    def __init__(self, a: torch.Tensor, num_ws: int, w_dim: int, side: int):
        super().__init__()
        self.a, self.num_ws, self.w_dim, self.side = a, num_ws, w_dim, side
        self.scale = nn.Parameter(torch.ones([]))  # ws depend on a parameter, as a mapping network's do
        self.gain = nn.Parameter(torch.ones([]))  # J = gain * A: the penalty's gradient reaches G

    def sample_ws(self, z, labels=None):
        return (z * self.scale).view(-1, self.num_ws, self.w_dim)

    def synthesis(self, ws):
        return (ws.flatten(1) @ (self.gain * self.a).T).view(-1, 1, self.side, self.side)


def test_path_length_of_a_linear_generator_is_the_norm_of_a_transpose_y():
    torch.manual_seed(2)
    num_ws, w_dim, side = 3, 4, 5
    a = torch.randn(side * side, num_ws * w_dim)
    g = LinearGenerator(a, num_ws, w_dim, side)
    z, y = torch.randn(6, num_ws * w_dim), torch.randn(6, 1, side, side)
    got = path_lengths(g, z, noise=y)
    jty = (y.flatten(1) @ a).view(6, num_ws, w_dim)  # J^T y per sample, split by layer
    torch.testing.assert_close(got, jty.square().sum(2).mean(1).sqrt())
    # A = c * (orthonormal columns): |J^T y|^2 averages to c^2 * num_ws * w_dim * E[y_i^2] / num_ws.
    q, _ = torch.linalg.qr(torch.randn(side * side, num_ws * w_dim))
    g = LinearGenerator(3.0 * q, num_ws, w_dim, side)
    lengths = path_lengths(g, torch.randn(4000, num_ws * w_dim))  # y ~ N(0, I) / sqrt(H W)
    expected = 3.0 * math.sqrt(w_dim / side**2)
    assert abs(lengths.square().mean().sqrt().item() - expected) < 0.02 * expected


def test_path_length_penalty_tracks_the_running_mean():
    torch.manual_seed(3)
    g = LinearGenerator(torch.randn(16, 8), 2, 4, 4)
    penalty = PathLengthPenalty(decay=0.01, batch_shrink=2)
    z = torch.randn(8, 8)
    torch.manual_seed(4)
    value = penalty(g, z)
    torch.manual_seed(4)
    lengths = path_lengths(g, z[:4]).detach()
    mean = 0.01 * lengths.mean()
    torch.testing.assert_close(penalty.pl_mean, mean)
    torch.testing.assert_close(value.detach(), (lengths - mean).square().mean())
    value.backward()
    assert g.gain.grad.abs() > 0  # G learns from the penalty
    with pytest.raises(ConfigError, match="no mapping network"):
        PathLengthPenalty.check_generator(nn.Linear(2, 2))


# ----------------------------------------------------------------- truncation and style mixing
def test_truncation_zero_gives_the_image_of_the_average_w():
    g = tiny_generator().eval()
    g.mapping.w_avg.normal_()
    with torch.no_grad():
        images = g(torch.randn(3, 8), truncation_psi=0.0)
        average = g.synthesis(g.w_avg.expand(1, g.num_ws, -1), "const")
        half = g(torch.randn(3, 8), truncation_psi=0.5)
    for image in images:
        torch.testing.assert_close(image, average[0])
    assert (half - average).abs().amax() > 1e-3  # psi = 0.5 stays between


def test_w_avg_follows_training_w_and_ema_copies_it():
    g = tiny_generator()
    z = torch.randn(16, 8)
    g.train()(z)
    w = g.mapping(z, update_w_avg=False)[:, 0].mean(0)
    torch.testing.assert_close(g.w_avg, 0.005 * w)  # one step of the 0.995 running mean from 0
    g.eval()(z)
    torch.testing.assert_close(g.w_avg, 0.005 * w)  # evaluation leaves it


def test_style_mixing_switches_at_the_chosen_layer():
    g = tiny_generator(style_mixing_prob=1.0).eval()
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    ws1, ws2 = g.mapping(z1), g.mapping(z2)
    for cutoff in range(1, g.num_ws):
        mixed = mix_styles(ws1, ws2, cutoff)
        assert torch.equal(mixed[:, :cutoff], ws1[:, :cutoff]) and torch.equal(
            mixed[:, cutoff:], ws2[:, cutoff:]
        )
    with torch.no_grad():  # no mixing at cutoff = num_ws; every layer's w matters to the image
        assert torch.equal(g.synthesis(mix_styles(ws1, ws2, g.num_ws), "const"), g.synthesis(ws1, "const"))
        assert not torch.allclose(
            g.synthesis(mix_styles(ws1, ws2, g.num_ws - 1), "const"), g.synthesis(ws1, "const")
        )
    # In training, G mixes at one random layer per batch: the first layers keep w of z.
    g.train()
    torch.manual_seed(5)
    ws = g.sample_ws(z1)
    switch = [(ws[:, i] != ws[:, i - 1]).any().item() for i in range(1, g.num_ws)]
    assert sum(switch) == 1 and torch.allclose(ws[:, 0], ws1[:, 0])
    assert torch.equal(tiny_generator().train().sample_ws(z1), tiny_generator().train().mapping(z1))  # prob 0


def test_half_life_ema_rule():
    assert half_life_beta(32, 10, 10**6) == pytest.approx(0.5 ** (32 / 10_000))
    assert half_life_beta(32, 10, 0, rampup=0.05) == 0.0  # the first update copies the generator
    assert half_life_beta(32, 10, 3200, rampup=0.05) == pytest.approx(0.5 ** (32 / 160))
    betas = [half_life_beta(64, 1, 0) ** k for k in (1000 // 64,)]
    assert betas[0] == pytest.approx(0.5, rel=0.05)  # half the weight after 1k images


# ----------------------------------------------------------------- presets and configs
# stylegan2-ada-pytorch's Generator/Discriminator built with the same settings (counted side by side).
PRESETS = {
    "stylegan2_32": (32, 19_947_539, 21_507_073),  # train.py --cfg=cifar
    "stylegan2_64": (64, 22_243_608, 23_407_361),  # train.py --cfg=auto at 64 px
}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_parameter_counts_match_stylegan2_ada(tiny_cfg, preset):
    size, g_params, d_params = PRESETS[preset]
    cfg = tiny_cfg([f"model={preset}", "data=cifar10", f"data.img_size={size}"])
    for node, count in ((cfg.model.generator, g_params), (cfg.model.discriminator, d_params)):
        net = instantiate(node)
        assert sum(p.numel() for p in net.parameters()) == count


def test_sides_of_seven_times_a_power_of_two_start_from_7x7():
    g = StyleGAN2Generator(8, 28, 1, 8, 2, channel_base=64, channel_max=8)
    d = StyleGAN2Discriminator(28, 1, channel_base=64, channel_max=8)
    assert g(torch.randn(3, 8)).shape == (3, 1, 28, 28) and d(torch.randn(3, 1, 28, 28)).shape == (3,)
    assert g.synthesis.resolutions == [7, 14, 28] and g.num_ws == 6
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Generator(img_size=24)


def test_a_w_input_varies_the_first_feature_map_with_z_where_the_constant_cannot():
    z = torch.randn(3, 8)
    for mode in ("const", "w"):
        g = tiny_generator(input_mode=mode).eval()
        for module in g.modules():  # every style is its bias alone: the same for every z
            if isinstance(module, EqualizedLinear) and module.bias is not None and module.bias[0] == 1:
                module.weight.data.zero_()
        images = g(z, noise_mode="none").detach()
        spread = (images - images[:1]).abs().amax()
        assert (spread < 1e-6) if mode == "const" else (spread > 1e-3)
    first = g.synthesis.b4
    ws = g.mapping(z)
    torch.testing.assert_close(
        first.input(ws[:, 0]).reshape(3, 8, 4, 4),
        F.linear(ws[:, 0], first.input.weight / math.sqrt(8), first.input.bias).reshape(3, 8, 4, 4),
    )
    assert not hasattr(first, "const")
    with pytest.raises(ValueError, match="const, w"):
        tiny_generator(input_mode="z")


def test_a_tanh_output_bounds_the_linear_image_in_forward_and_synthesis_alike():
    z = torch.randn(3, 8)
    linear, bounded = tiny_generator().eval(), tiny_generator(output_activation="tanh").eval()
    torch.testing.assert_close(bounded(z), torch.tanh(linear(z)))
    ws = bounded.sample_ws(z)  # what path length differentiates: synthesis alone
    torch.testing.assert_close(bounded.synthesis(ws, "const"), bounded(z))
    with pytest.raises(ValueError, match="linear, tanh"):
        tiny_generator(output_activation="sigmoid")


def test_conditional_networks_take_labels():
    g = StyleGAN2Generator(8, 8, 1, 8, 2, channel_base=64, channel_max=8, num_classes=3).eval()
    d = StyleGAN2Discriminator(8, 1, channel_base=64, channel_max=8, num_classes=3, mapping_layers=2)
    z = torch.zeros(2, 8)
    images = g(z, torch.tensor([0, 2]))
    assert (images[0] - images[1]).abs().amax() > 1e-4 and d(images, torch.tensor([0, 2])).shape == (2,)
    with pytest.raises(ValueError, match="needs labels"):
        g(z)


def test_truncation_is_refused_without_a_mapping_network(tiny_cfg):
    module = build_module(tiny_cfg(["model=dcgan", "data=digits", "data.img_size=16"]), None)
    with pytest.raises(ConfigError, match="no mapping network"):
        module.generate(torch.randn(2, module.latent_dim), truncation_psi=0.7)
    module = build_module(
        tiny_cfg(["model=dcgan", "loss=stylegan2", "data=digits", "data.img_size=16"]), None
    )
    with pytest.raises(ConfigError, match="no mapping network"):
        module.setup("fit")  # path length: refused when fitting starts


# ----------------------------------------------------------------- training, generation, export
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("stylegan2")
    metrics = train(compose_tiny(root, [*TINY, "augment=diffaugment"]))
    assert {"train/r1", "train/path_length"} <= set(metrics)
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_trains_with_ada_in_fp32_and_bf16(tiny_cfg, precision):
    cfg = tiny_cfg(
        [*TINY, "augment=ada", "model.augment.speed_images=1000", f"trainer.precision={precision}"]
    )
    metrics = train(cfg)
    assert all(
        math.isfinite(metrics[k]) for k in ("train/d_loss", "train/g_loss", "train/path_length", "train/r1")
    )
    state = load_checkpoint(f"{cfg.paths.output_dir}/checkpoints/last.ckpt")["state_dict"]
    assert state["generator.mapping.w_avg"].abs().sum() > 0  # the running mean of w moved
    assert torch.equal(state["generator.mapping.w_avg"], state["generator_ema.mapping.w_avg"])
    assert state["g_regularizers.path_length.pl_mean"] > 0  # path length's running mean is checkpointed


@pytest.mark.parametrize("experiment", ["stylegan2_mnist5k", "stylegan2_r3gan_mnist5k"])
def test_architecture_experiments_drop_path_length_and_train_with_their_loss(tiny_cfg, experiment):
    small = [
        "model.generator.channel_base=64",
        "model.generator.channel_max=8",
        "++trainer.limit_train_batches=3",
    ]
    cfg = tiny_cfg([f"experiment={experiment}", *small, "trainer.limit_val_batches=0"])
    objective = instantiate(cfg.loss, _convert_="all")
    relativistic = experiment == "stylegan2_r3gan_mnist5k"
    assert objective.g_penalties == {}  # cfg=cifar's recipe: no path length
    assert set(objective.penalties) == ({"r1", "r2"} if relativistic else {"r1"})
    assert objective.penalties["r1"].weight == 0.5  # gamma = 1 in both
    assert objective.penalties["r1"].every == (1 if relativistic else 16)
    assert objective.g_needs_real is relativistic
    metrics = train(cfg)
    logged = {"train/r1", "train/r2"} if relativistic else {"train/r1"}
    assert all(math.isfinite(metrics[k]) for k in logged | {"train/d_loss", "train/g_loss"})
    assert "train/path_length" not in metrics


def test_generate_truncates_toward_the_average(checkpoint):
    samples, _ = generate(checkpoint, 4, seed=1, truncation_psi=0.0)
    assert torch.allclose(samples[0], samples[3], atol=1e-6)
    net, _ = load_generator(checkpoint)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        generate(checkpoint, 4, seed=1, truncation_psi=0.7)[0], net(z, truncation_psi=0.7)
    )
    again, _ = generate(checkpoint, 4, seed=1)
    torch.testing.assert_close(again, generate(checkpoint, 4, seed=1)[0])  # eval noise is constant


@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_onnx_export_reproduces_the_generator(checkpoint, tmp_path, psi):
    out = tmp_path / "g.onnx"
    result = export_generator(checkpoint, "onnx", out, batch_size=3, truncation_psi=psi)
    assert result["max_abs_diff"] < 1e-4 and result["truncation_psi"] == psi
    net, _ = load_generator(checkpoint)
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(9))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(got, net(z, truncation_psi=psi), rtol=1e-4, atol=1e-5)


def test_a_generator_with_a_w_input_trains_and_exports(tmp_path):
    metrics = train(compose_tiny(tmp_path, [*TINY, "model.generator.input_mode=w"]))
    assert math.isfinite(metrics["train/g_loss"])
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert "generator.synthesis.b4.input.weight" in load_checkpoint(checkpoint)["state_dict"]
    result = export_generator(checkpoint, "onnx", tmp_path / "g.onnx", batch_size=3, truncation_psi=0.7)
    assert result["max_abs_diff"] < 1e-4


def test_truncation_sweep_evaluates_and_plots(checkpoint, tmp_path):
    evals = []
    for psi in (1.0, 0.5):
        args = parse_args([f"ckpt={checkpoint}", "names=fid,pr", "n_fake=40", f"truncation_psi={psi}"])
        args["cache_dir"] = str(tmp_path / "cache")
        report = evaluate_checkpoint(args)
        assert report["protocol"].get("truncation_psi", 1.0) == psi
        evals.append(tmp_path / f"eval_{psi}.json")
        evals[-1].write_text(json.dumps(report))
    png, points = report_sweep(evals, tmp_path / "sweep")
    assert png.is_file() and [p["psi"] for p in points] == [1.0, 0.5]
    ids = {json.loads(e.read_text())["protocol_id"] for e in evals}
    assert len(ids) == 2  # psi is part of the protocol


def test_fir_filter_filters_each_channel_alone_with_the_gained_kernel():
    # The depthwise convolution against its definition: every (sample, channel) image padded and
    # filtered on its own, as the channels-folded-into-the-batch version computed it.
    x = torch.randn(2, 3, 8, 8)
    f = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    ref = F.conv2d(F.pad(x.reshape(-1, 1, 8, 8), [2, 1, 2, 1]), (4 * f)[None, None]).reshape(2, 3, 8, 8)
    assert torch.allclose(fir_filter(x, f, (2, 1), gain=4.0), ref, atol=1e-6)
    x.requires_grad_(True)
    fir_filter(x, f, (2, 1)).sum().backward()  # each input pixel reaches every output it filters
    assert torch.allclose(x.grad[:, :, 3:5, 3:5], torch.ones(2, 3, 2, 2))


@pytest.mark.parametrize("pad, gain", [((2, 1), 4.0), ((1, 1), 1.0), ((3, 2), 4.0)])
def test_separable_fir_filter_equals_the_depthwise_one_through_the_double_backward(pad, gain):
    # CUDA's shifted sums against the CPU's depthwise convolution: the same filtered images, and
    # the same weight gradients of an R1-style penalty (a gradient with respect to the input,
    # differentiated again), the double backward the separable form exists for.
    f = lowpass_filter()
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    grads = []
    for fir in (fir_filter_depthwise, fir_filter_separable):
        y = fir(F.conv2d(x, weight, padding=1), f.double(), pad, gain=gain)
        (g,) = torch.autograd.grad(y.sin().sum(), x, create_graph=True)
        (w_grad,) = torch.autograd.grad(g.square().sum(), weight)
        grads.append((y, w_grad))
    (y_conv, w_conv), (y_sep, w_sep) = grads
    assert y_sep.shape == y_conv.shape == (2, 5, 9 + sum(pad) - 3, 9 + sum(pad) - 3)
    assert torch.allclose(y_sep, y_conv, atol=1e-12) and torch.allclose(w_sep, w_conv, atol=1e-10)
    assert w_conv.abs().max() > 1e-3  # the penalty reaches the weights

"""StyleGAN2 generator and discriminator in plain torch (no custom CUDA ops: runs on the CPU,
under bf16 autocast and exports to ONNX).

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (config F), with the
layer layout of stylegan2-ada (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): a mapping network (``mapping_layers`` fully connected layers, learning-rate
multiplier 0.01, 2nd-moment-normalized ``z``) to ``w``; a synthesis network from a learned 4x4
constant through one block per resolution, each of two modulated and demodulated 3x3
convolutions (the first up-sampling) with per-layer noise of learned strength, and the "skip"
output (a modulated 1x1 toRGB per block, the running image up-sampled and summed); a residual
discriminator with minibatch standard deviation (group 4) before its 4x4 epilogue.

Every weight is stored N(0, 1) and scaled at run time by ``lr_mult / sqrt(fan_in)`` (equalized
learning rate, Karras et al. 2018). Resampling uses the [1, 3, 3, 1] low-pass filter. Channels
are ``min(channel_base // resolution, channel_max)`` per resolution, as stylegan2-ada. Sides are
powers of two (8 to 1024) as in the paper, or ``7 * 2**k`` (28 px MNIST) from a 7x7 constant and
a 7x7 epilogue, a ganforge extension.

Deliberate differences from stylegan2-ada's networks (see ``README``): the modulated convolution
always runs unfused (scale the input by the styles, one shared convolution, scale the output by
the demodulation coefficients: the same values as the fused grouped convolution and faster on a
CPU); the noise is ``random`` in training and ``const`` in eval mode unless ``noise_mode`` says
otherwise, so a sample depends on its latent alone (metrics, exports); no fp16 blocks or
activation clamping (train with bf16 autocast instead); the minibatch-std group is the largest
divisor of the batch not above ``mbstd_group_size`` rather than an error.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.networks.dcgan import resolution_plan

LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' magnitude through a leaky ReLU (He et al.)
NOISE_MODES = ("random", "const", "none")
INPUT_MODES = ("const", "w")
OUTPUT_ACTIVATIONS = ("linear", "tanh")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x`` scaled to unit mean square along dim 1 (the mapping network's input normalization)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def lowpass_filter(taps: tuple[int, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """The separable 2-D resampling filter, normalized to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def fir_filter(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """Pad every side by ``pad = (before, after)`` and convolve each channel with ``f * gain``
    (the filter is symmetric, so correlation and convolution agree).

    Two computations of the same values, by device. On a CPU, a depthwise convolution (the filter
    repeated per channel, ``groups`` = channels): folding the channels into the batch gives the
    same values, but its backward pass is ~30x slower there (oneDNN, one-channel images), and
    shifted sums cost 7-13 % more per StyleGAN2 iteration (``benchmarks/bench_stylegan2.py``). On
    CUDA, the separable shifted sums of :func:`fir_filter_separable`: the double backward of a
    grouped convolution (R1 and R2 through D's down-sampling, path length through G's
    up-sampling) runs one convolution per channel, and on an H200 those loops took 95 % of the GPU
    time of a StyleGAN2 iteration (``benchmarks/RESULTS.md``, "First GPU figures")."""
    return (fir_filter_separable if x.is_cuda else fir_filter_depthwise)(x, f, pad, gain)


def fir_filter_depthwise(
    x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0
) -> torch.Tensor:
    """:func:`fir_filter` as a depthwise convolution: ``f * gain`` repeated per channel, ``groups``
    = channels."""
    c = int(x.shape[1])  # a constant of the layer, also when traced (ONNX needs the kernel's shape)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = (f * gain).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


def fir_filter_separable(
    x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0
) -> torch.Tensor:
    """:func:`fir_filter` as weighted sums of shifted slices, first along the height, then the
    width: no convolution, so every derivative is elementwise too. ``f`` must be rank one, as
    :func:`lowpass_filter`'s outer product is: its row sums and column sums (over its total)
    are then the 1-D taps whose outer product is ``f``."""
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    taps_h, taps_w = f.shape
    h, w = x.shape[2] - taps_h + 1, x.shape[3] - taps_w + 1
    f = f.to(x.dtype)
    along_h = f.sum(dim=1) * gain
    along_w = f.sum(dim=0) / f.sum()
    x = sum(along_h[i] * x[:, :, i : i + h, :] for i in range(taps_h))
    return sum(along_w[j] * x[:, :, :, j : j + w] for j in range(taps_w))


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x up-sampling: zeros between the samples, then the low-pass filter (gain 4)."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)
    taps = f.shape[0]
    return fir_filter(x, f, ((taps + 1) // 2, (taps - 2) // 2), gain=4.0)


def downsample2d_1x1(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x down-sampling: the low-pass filter, then every second sample."""
    taps = f.shape[0]
    return fir_filter(x, f, ((taps - 1) // 2, (taps - 2) // 2))[:, :, ::2, ::2]


def mix_styles(ws: torch.Tensor, ws_other: torch.Tensor, cutoff: torch.Tensor | int) -> torch.Tensor:
    """Style mixing: layers ``< cutoff`` keep ``ws``, layers ``>= cutoff`` take ``ws_other``.

    Args:
        ws: ``(N, num_ws, w_dim)`` per-layer latents of the first latent code.
        ws_other: the same shape, from a second latent code.
        cutoff: the first layer that takes ``ws_other`` (``num_ws`` = no mixing); a 0-dim tensor
            stays on the device (no host sync).
    """
    layer = torch.arange(ws.shape[1], device=ws.device)
    return torch.where((layer >= cutoff)[None, :, None], ws_other, ws)


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate and an optional scaled leaky ReLU.

    Args:
        in_features: input size.
        out_features: output size.
        bias: add a learned bias.
        activation: ``"linear"`` or ``"lrelu"`` (slope 0.2, output times sqrt(2)).
        lr_mult: learning-rate multiplier: weights are stored ``N(0, 1) / lr_mult`` and scaled by
            ``lr_mult / sqrt(in_features)`` (the bias by ``lr_mult``).
        bias_init: initial bias (1 for the style affines, so styles start near 1).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_mult: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain, self.bias_gain = lr_mult / math.sqrt(in_features), lr_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activation == "lrelu" else x


class EqualizedConv2d(nn.Module):
    """Convolution with equalized learning rate, optional 2x down-sampling and scaled leaky ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel side (1 or 3).
        bias: add a learned bias.
        activation: ``"linear"`` or ``"lrelu"``.
        down: 1, or 2 to down-sample (low-pass filter first, as stylegan2-ada).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
    ):
        super().__init__()
        self.activation, self.down, self.kernel_size = activation, down, kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.down == 2 and self.kernel_size == 1:
            x = F.conv2d(downsample2d_1x1(x, self.resample_filter), weight)
        elif self.down == 2:  # filter with the padding of the whole operation, then a strided conv
            pad = (self.resample_filter.shape[0] - 2 + 1) // 2 + self.kernel_size // 2
            x = F.conv2d(fir_filter(x, self.resample_filter, (pad, pad)), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.kernel_size // 2)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype)[None, :, None, None]
        if self.activation == "lrelu":
            return F.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)
        return x * gain if gain != 1 else x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    resample_filter: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution, computed unfused.

    Equal to convolving each sample with its own weights ``w'[o, i] = w[o, i] * s[i]``, divided by
    ``sqrt(sum_{i,k} w'[o, i, k]^2 + 1e-8)`` when ``demodulate``: the input is scaled by the styles,
    convolved with the shared weights and the output scaled by the demodulation coefficients.

    Args:
        x: ``(N, I, H, W)`` activations.
        weight: ``(O, I, k, k)`` unscaled weights (demodulation normalizes any scale).
        styles: ``(N, I)`` per-sample input-channel scales.
        demodulate: normalize each output channel's per-sample weights to unit norm.
        up: 2x up-sampling: a transposed stride-2 convolution, then the low-pass filter (gain 4).
        resample_filter: the low-pass filter, needed when ``up``.
    """
    x = x * styles.to(x.dtype)[:, :, None, None]
    k = weight.shape[-1]
    if up:
        x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
        # The filter's padding: that of the whole up-sampled convolution less the transposed conv's growth.
        taps = resample_filter.shape[0]
        pad = (k // 2 + (taps + 1) // 2 - (k - 1), k // 2 + (taps - 2) // 2 - (k - 2))
        x = fir_filter(x, resample_filter, pad, gain=4.0)
    else:
        x = F.conv2d(x, weight.to(x.dtype), padding=k // 2)
    if demodulate:
        w = weight[None] * styles[:, None, :, None, None]  # (N, O, I, k, k) per-sample weights
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        x = x * dcoefs.to(x.dtype)[:, :, None, None]
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution, noise of learned strength, bias and scaled leaky ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        w_dim: size of ``w``.
        resolution: output side.
        up: 2x up-sample (the first layer of a block).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), up=self.up, resample_filter=self.resample_filter)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            x = x + (noise * self.noise_strength).to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        x = x + self.bias.to(x.dtype)[None, :, None, None]
        return F.leaky_relu(x, 0.2) * LRELU_GAIN


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to image channels, not demodulated (the skip generator's output)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return x + self.bias.to(x.dtype)[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (constant or up-sampling layer), layer, toRGB.

    Args:
        in_channels: channels of the previous block; 0 for the first (constant) block.
        out_channels: channels of this block.
        w_dim: size of ``w``.
        resolution: side of this block's output.
        img_channels: image channels.
        input_mode: the first block's input: ``const``, StyleGAN2's learned constant, or ``w``, an
            equalized fully connected map of the block's ``w`` to ``out_channels x r x r`` (as
            DCGAN projects ``z``), so that the layout varies per sample before any modulation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        input_mode: str = "const",
    ):
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {', '.join(INPUT_MODES)}; got {input_mode!r}")
        self.in_channels, self.input_mode = in_channels, input_mode
        if in_channels == 0 and input_mode == "const":
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        elif in_channels == 0:
            self.input = EqualizedLinear(w_dim, out_channels * resolution * resolution)
            self.input_shape = (out_channels, resolution, resolution)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.in_channels == 0:
            if self.input_mode == "const":
                x = self.const.to(ws.dtype)[None].expand(ws.shape[0], -1, -1, -1)
            else:
                x = self.input(ws[:, 0]).reshape(-1, *self.input_shape)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv]).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


def channels_per_resolution(img_size: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """``{resolution: min(channel_base // resolution, channel_max)}`` from the base to ``img_size``.

    A power of two starts from 4x4 as StyleGAN2; ``7 * 2**k`` (28 px MNIST, 56, ...) from 7x7,
    an extension of ganforge's (:func:`~ganforge.networks.dcgan.resolution_plan`).
    """
    try:
        base, n_up = resolution_plan(img_size)
    except ValueError:
        raise ValueError(
            f"StyleGAN2 needs img_size = a power of two from 8 to 1024 (or 7 * 2^k, e.g. 28); got {img_size}"
        ) from None
    return {base * 2**i: min(channel_base // (base * 2**i), channel_max) for i in range(n_up + 1)}


class SynthesisNetwork(nn.Module):
    """``ws (N, num_ws, w_dim)`` -> images, one :class:`SynthesisBlock` per resolution (``b4``, ``b8``, ...)."""

    def __init__(
        self,
        w_dim: int,
        img_size: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        input_mode: str = "const",
        output_activation: str = "linear",
    ):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}; got {output_activation!r}"
            )
        self.output_activation = output_activation
        self.channels = channels_per_resolution(img_size, channel_base, channel_max)
        self.resolutions = list(self.channels)
        self.num_ws = 0
        for res in self.resolutions:
            in_channels = self.channels[res // 2] if res > self.resolutions[0] else 0
            block = SynthesisBlock(in_channels, self.channels[res], w_dim, res, img_channels, input_mode)
            self.add_module(f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last block's toRGB; earlier toRGBs share their next block's first w

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = img = None
        index = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, index : index + block.num_conv + 1], noise_mode)
            index += block.num_conv
        return torch.tanh(img) if self.output_activation == "tanh" else img


class MappingNetwork(nn.Module):
    """``z`` (and class labels) -> ``w``, broadcast to ``num_ws`` layers, with the running mean of ``w``.

    Args:
        latent_dim: size of ``z`` (0: labels only, the conditional discriminator's label mapping).
        num_classes: classes (0 = unconditional); labels are one-hot embedded as stylegan2-ada's ``c``.
        w_dim: size of ``w``.
        num_ws: layers to broadcast to; ``None`` returns ``(N, w_dim)``.
        num_layers: fully connected layers (8 in StyleGAN2, 2 in stylegan2-ada's CIFAR preset).
        lr_mult: learning-rate multiplier of every layer (0.01).
        w_avg_beta: decay of the running mean ``w_avg`` (the truncation centre); ``None`` = none.
    """

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        lr_mult: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        self.latent_dim, self.num_classes, self.num_ws, self.w_avg_beta = (
            latent_dim,
            num_classes,
            num_ws,
            w_avg_beta,
        )
        embed_features = w_dim if num_classes else 0
        if num_classes:
            self.embed = EqualizedLinear(num_classes, embed_features)
        features = [latent_dim + embed_features] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(features[i], features[i + 1], activation="lrelu", lr_mult=lr_mult)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        labels: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        parts = []
        if self.latent_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.num_classes:
            if labels is None:
                raise ValueError("a conditional StyleGAN2 network needs labels")
            one_hot = (labels[:, None] == torch.arange(self.num_classes, device=labels.device)).float()
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x[:, None].expand(-1, self.num_ws, -1)
        if truncation_psi != 1:
            avg = self.w_avg.to(x.dtype)
            truncated = avg + truncation_psi * (x - avg)
            if truncation_cutoff is None:
                return truncated
            x = torch.cat([truncated[:, :truncation_cutoff], x[:, truncation_cutoff:]], dim=1)
        return x


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator: ``(z, labels)`` -> images (about [-1, 1], not clamped, as StyleGAN2).

    Args:
        latent_dim: size of ``z`` (512 in the paper).
        img_size: output side, a power of two from 8 to 1024 (or ``7 * 2**k``, from a 7x7 constant).
        channels: image channels.
        w_dim: size of ``w`` (512).
        mapping_layers: fully connected layers of the mapping network (8).
        mapping_lr_mult: learning-rate multiplier of the mapping network (0.01).
        channel_base: channels at resolution r are ``min(channel_base // r, channel_max)``
            (32768 = config F; stylegan2-ada's "auto" preset uses 16384 below 512 px).
        channel_max: the most channels of any block (512).
        num_classes: > 0 conditions on class labels, embedded and concatenated to ``z``.
        w_avg_beta: decay of the running mean of ``w`` (0.995), the centre of truncation.
        style_mixing_prob: in training mode, the share of batches whose layers from a random
            cutoff on take ``w`` of a second ``z`` (0.9 in StyleGAN2; 0 = off).
        input_mode: the synthesis input: ``const`` (StyleGAN2's learned constant) or ``w`` (a
            fully connected map of the first layer's ``w`` to the first block's feature map).
        output_activation: ``linear`` (StyleGAN2: unclamped images) or ``tanh`` (bounded to
            [-1, 1], as DCGAN's generator).
    """

    def __init__(
        self,
        latent_dim: int = 512,
        img_size: int = 32,
        channels: int = 3,
        w_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_mult: float = 0.01,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_classes: int = 0,
        w_avg_beta: float = 0.995,
        style_mixing_prob: float = 0.0,
        input_mode: str = "const",
        output_activation: str = "linear",
    ):
        super().__init__()
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(f"style_mixing_prob must be in [0, 1]; got {style_mixing_prob}")
        self.latent_dim, self.num_classes, self.w_dim = latent_dim, num_classes, w_dim
        self.style_mixing_prob = style_mixing_prob
        self.synthesis = SynthesisNetwork(
            w_dim, img_size, channels, channel_base, channel_max, input_mode, output_activation
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            latent_dim, num_classes, w_dim, self.num_ws, mapping_layers, mapping_lr_mult, w_avg_beta
        )

    @property
    def w_avg(self) -> torch.Tensor:
        """The running mean of ``w``: the image of truncation ``psi = 0``."""
        return self.mapping.w_avg

    def sample_ws(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Per-layer latents ``(N, num_ws, w_dim)``; in training mode, style-mixed with probability
        ``style_mixing_prob`` from a cutoff drawn uniformly in ``[1, num_ws)`` (one per batch)."""
        ws = self.mapping(z, labels, truncation_psi, truncation_cutoff)
        if not (self.training and self.style_mixing_prob > 0):
            return ws
        cutoff = torch.randint(1, self.num_ws, (), device=ws.device)
        cutoff = torch.where(torch.rand((), device=ws.device) < self.style_mixing_prob, cutoff, self.num_ws)
        other = self.mapping(
            torch.randn_like(z), labels, truncation_psi, truncation_cutoff, update_w_avg=False
        )
        return mix_styles(ws, other, cutoff)

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str | None = None,
    ) -> torch.Tensor:
        """Images of ``z``; ``noise_mode`` (``random``, ``const``, ``none``) defaults to ``random``
        in training and ``const`` in eval mode, so evaluation samples depend on ``z`` alone."""
        noise_mode = noise_mode or ("random" if self.training else "const")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")
        return self.synthesis(self.sample_ws(z, labels, truncation_psi, truncation_cutoff), noise_mode)


def minibatch_stddev(x: torch.Tensor, group_size: int, num_channels: int = 1) -> torch.Tensor:
    """Append the mean standard deviation over groups of samples as ``num_channels`` feature maps.

    Samples ``i, i + n/G, i + 2n/G, ...`` form a group (stylegan2-ada's grouping). The group is the
    largest divisor of the batch not above ``group_size``, so any batch size works.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.reshape(g, -1, num_channels, c // num_channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])
    y = y.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block of D: (fromRGB,) two 3x3 convolutions, the second down-sampling, plus a 1x1
    down-sampling skip; both paths scaled by sqrt(1/2)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.fromrgb = EqualizedConv2d(img_channels, tmp_channels, 1, activation="lrelu")
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2's residual discriminator: images (and labels) -> logits ``(N,)``.

    Args:
        img_size: input side, a power of two from 8 to 1024 (or ``7 * 2**k``).
        channels: image channels.
        channel_base: channels at resolution r are ``min(channel_base // r, channel_max)``.
        channel_max: the most channels of any block.
        num_classes: > 0 projects the output onto a mapped label embedding (stylegan2-ada's
            ``cmap``): ``logit = <out(h), mapping(y)> / sqrt(cmap_dim)``.
        cmap_dim: size of the label projection; ``None`` = the epilogue's channels.
        mapping_layers: layers of the label mapping network (conditional only).
        mbstd_group_size: samples per minibatch-standard-deviation group (4).
        mbstd_channels: feature maps of minibatch standard deviation (1; 0 = off).
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_classes: int = 0,
        cmap_dim: int | None = None,
        mapping_layers: int = 8,
        mbstd_group_size: int = 4,
        mbstd_channels: int = 1,
    ):
        super().__init__()
        widths = channels_per_resolution(img_size, channel_base, channel_max)
        base = min(widths)
        self.resolutions = sorted((r for r in widths if r > base), reverse=True)
        for res in self.resolutions:
            in_channels = widths[res] if res < img_size else 0
            self.add_module(
                f"b{res}", DiscriminatorBlock(in_channels, widths[res], widths[res // 2], channels)
            )
        c4 = widths[base]  # the epilogue's channels (4x4 for power-of-two sizes)
        self.num_classes, self.mbstd_group_size, self.mbstd_channels = (
            num_classes,
            mbstd_group_size,
            mbstd_channels,
        )
        self.cmap_dim = (cmap_dim or c4) if num_classes else 0
        if num_classes:
            self.mapping = MappingNetwork(
                0, num_classes, self.cmap_dim, None, mapping_layers, w_avg_beta=None
            )
        self.conv = EqualizedConv2d(c4 + mbstd_channels, c4, 3, activation="lrelu")
        self.fc = EqualizedLinear(c4 * base**2, c4, activation="lrelu")
        self.out = EqualizedLinear(c4, self.cmap_dim or 1)

    def forward(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = None
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x, img)
        if self.mbstd_channels:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_channels)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if not self.num_classes:
            return x.flatten()
        if labels is None:
            raise ValueError("a conditional StyleGAN2 discriminator needs labels")
        cmap = self.mapping(None, labels)
        return (x * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)

"""``ganforge-export``: a checkpoint's network as ONNX, TorchScript or ``torch.export``, verified.

Usage:
    ganforge-export ckpt=outputs/dcgan_mnist5k/<run>/checkpoints/last.ckpt format=onnx out=generator.onnx
    ganforge-export ckpt=... format=torchscript out=generator.pt batch_size=16 ema=false
    ganforge-export ckpt=... format=pt2 out=generator.pt2     # torch.export, TorchScript's successor
    ganforge-export ckpt=<cyclegan run>/checkpoints/last.ckpt format=onnx direction=BtoA
    ganforge-export ckpt=<stylegan2 run>/checkpoints/last.ckpt format=onnx truncation_psi=0.7

A GAN checkpoint exports its generator: latents ``z (N, latent_dim)`` (and, for a conditional
generator, class ``labels (N,)`` int64) to ``images (N, C, H, W)`` in [-1, 1], batch dynamic.
``truncation_psi=`` bakes truncation toward the average ``w`` into the graph (generators with a
mapping network, such as StyleGAN2's, whose eval-mode noise is its stored constant, so the file is
deterministic).

An image-to-image checkpoint (``cyclegan``, ``pix2pix``, ``cut``: the schemes
:func:`ganforge.translate.load_translator` reads) exports its translator of ``direction``
(``AtoB``, or ``BtoA`` for CycleGAN): ``images (N, C, H, W)`` in [-1, 1] to ``translated``, the
same shape. The batch is dynamic; so are height and width when the network declares the
multiple its sides need (``size_multiple``) and that multiple is below the training size: the
ResNet translator takes any sides that are multiples of 4. The U-Net's depth takes the
training size down to 1x1 (``size_multiple`` = the training size), so it is exported at one
size, the training size or ``img_size``. Dropout is off in the export: pix2pix's test-time
dropout (its noise, which ``ganforge-translate`` keeps) would make the file's outputs random,
and a random output cannot be verified; the export is the deterministic translator, dropout
off as ``nn.Dropout`` in eval mode.

After writing, the file is loaded again (ONNX with onnxruntime, TorchScript with
``torch.jit.load``, pt2 with ``torch.export.load``) and run on fresh inputs of two batch sizes
(and, where they are dynamic, two image sizes); its outputs are compared with the checkpoint's
network in PyTorch. A difference above ``atol``, or a file that does not run, is an error: the
command exits with status 1 and the file is removed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.networks.translator_layers import TestTimeDropout
from ganforge.translate import load_translator
from ganforge.utils.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, load_submodule
from ganforge.utils.cli import parse_key_values, print_error
from ganforge.validation import check_truncation

FORMATS = ("onnx", "torchscript", "pt2")
USAGE = (
    "usage: ganforge-export ckpt=<path> format=onnx|torchscript|pt2 [out=<file>] [batch_size=4] "
    "[atol=1e-4] [ema=true truncation_psi=1.0 (GAN)] [direction=AtoB|BtoA img_size=<px> (image-to-image)]"
)
DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "format": "onnx",
    "out": None,
    "batch_size": 4,
    "ema": True,
    "atol": 1e-4,
    "direction": None,
    "img_size": None,
    "truncation_psi": 1.0,
}
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
GAN_SCHEMES = ("gan", None)  # None: checkpoints written before schemes were recorded


class ExportError(RuntimeError):
    """The exported file does not reproduce the checkpoint's network."""


@dataclass(frozen=True)
class Signature:
    """A graph's input names (in call order), its output name, and the axes that vary.

    Attributes:
        inputs: the input names.
        output: the output name.
        axes: ``name -> {axis: dimension}`` for inputs and output; dimensions of the same name
            are one size (``batch``), ``height`` and ``width`` vary with the image.
    """

    inputs: tuple[str, ...]
    output: str
    axes: dict[str, dict[int, str]]


class GeneratorGraph(nn.Module):
    """The generator with explicit graph inputs: ``(z)`` or ``(z, labels)`` when conditional;
    ``truncation_psi`` != 1 is passed to the generator as a constant of the graph."""

    def __init__(self, generator: nn.Module, conditional: bool, truncation_psi: float = 1.0):
        super().__init__()
        self.generator, self.conditional, self.truncation_psi = generator, conditional, truncation_psi

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = labels if self.conditional else None
        if self.truncation_psi == 1:
            return self.generator(z, labels)
        return self.generator(z, labels, truncation_psi=self.truncation_psi)


class TranslatorGraph(nn.Module):
    """A translator as a graph of one input, with its dropout off (see the module docstring)."""

    def __init__(self, translator: nn.Module):
        super().__init__()
        self.translator = translator
        self.dropout_turned_off = False  # whether the checkpoint's network drops out at test time
        for module in translator.modules():
            if isinstance(module, TestTimeDropout):
                self.dropout_turned_off |= module.at_eval and module.p > 0
                module.at_eval = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.translator(images)


def example_inputs(latent_dim: int, num_classes: int, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random ``(z,)`` or ``(z, labels)`` for ``n`` samples."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=rng)
    if not num_classes:
        return (z,)
    return z, torch.randint(0, num_classes, (n,), generator=rng)


def example_images(channels: int, n: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """``n`` random images in [-1, 1] of ``size`` (height, width)."""
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, *size, generator=rng) * 2 - 1


def _export_onnx(graph: nn.Module, inputs: dict[str, torch.Tensor], out: Path, sig: Signature) -> None:
    torch.onnx.export(
        graph,
        tuple(inputs.values()),
        str(out),
        input_names=list(sig.inputs),
        output_names=[sig.output],
        dynamic_axes=sig.axes,
        dynamo=False,  # the TorchScript-based exporter: one self-contained file, any batch size
    )


def _run_onnx(path: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {arg.name: inputs[arg.name].numpy() for arg in session.get_inputs()}
    return torch.from_numpy(session.run(None, feeds)[0])


def _export_torchscript(graph: nn.Module, inputs: dict[str, torch.Tensor], out: Path, sig: Signature) -> None:
    traced = torch.jit.trace(graph, tuple(inputs.values()), check_trace=False)
    torch.jit.save(traced, str(out))


def _run_torchscript(path: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(*inputs.values())


def _export_pt2(graph: nn.Module, inputs: dict[str, torch.Tensor], out: Path, sig: Signature) -> None:
    # One named batch for every input; image sides as torch.export finds them (the network's guards).
    dims = {"batch": torch.export.Dim("batch", min=1), "height": torch.export.Dim.AUTO}
    dims["width"] = torch.export.Dim.AUTO
    shapes = tuple({axis: dims[name] for axis, name in sig.axes[key].items()} for key in sig.inputs)
    example = tuple(inputs.values())
    if example[0].shape[0] == 1:  # torch.export fixes a size of 1: trace a batch of two copies
        example = tuple(torch.cat([x, x]) for x in example)
    program = torch.export.export(graph, example, dynamic_shapes=shapes)
    torch.export.save(program, str(out))


def _run_pt2(path: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.export.load(str(path)).module()(*inputs.values())


# format -> (write the file, run the written file on named inputs)
_WRITERS = {
    "onnx": (_export_onnx, _run_onnx),
    "torchscript": (_export_torchscript, _run_torchscript),
    "pt2": (_export_pt2, _run_pt2),
}


def write_verified(
    graph: nn.Module,
    fmt: str,
    out: Path,
    sig: Signature,
    trace: dict[str, torch.Tensor],
    checks: Iterable[dict[str, torch.Tensor]],
    atol: float,
    what: str,
) -> float:
    """Write ``graph`` as ``fmt`` to ``out`` and compare the file with ``graph`` on each input set
    of ``checks``; returns the largest absolute difference.

    Raises:
        ExportError: the file does not run on a check's inputs, gives another shape, or differs
            by more than ``atol``; the file is removed first.
    """
    write, run = _WRITERS[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            write(graph, trace, out, sig)
    except Exception:
        out.unlink(missing_ok=True)
        raise
    worst = 0.0
    for inputs in checks:
        shapes = ", ".join(f"{name} {tuple(x.shape)}" for name, x in inputs.items())
        with torch.no_grad():
            expected = graph(*inputs.values()).float()
        try:
            got = run(out, inputs).float()
        except Exception as err:  # a file that cannot run on valid inputs fails verification
            out.unlink(missing_ok=True)
            raise ExportError(f"{out} does not run on {shapes}: {err}") from err
        if got.shape != expected.shape:
            out.unlink(missing_ok=True)
            raise ExportError(f"{out}: output shape {tuple(got.shape)} != {what}'s {tuple(expected.shape)}")
        worst = max(worst, (got - expected).abs().max().item())
    if not worst <= atol:
        out.unlink(missing_ok=True)
        raise ExportError(
            f"{fmt} export to {out} does not match its {what}: max |difference| = {worst:.3g} > atol {atol:g}"
        )
    return worst


def _generator_export(
    ckpt: dict, batch_size: int, ema: bool, truncation_psi: float = 1.0
) -> tuple[nn.Module, Signature, list, dict]:
    """The graph, signature, input sets (trace first) and description of a GAN generator."""
    config = checkpoint_config(ckpt)
    generator = load_submodule(ckpt, config["model"]["generator"], "generator_ema" if ema else "generator")
    if truncation_psi != 1:
        check_truncation(generator, truncation_psi)
    latent_dim = int(config["model"]["latent_dim"])
    num_classes = int(config["model"].get("num_classes") or 0)
    names = ("z", "labels")[: 2 if num_classes else 1]
    sig = Signature(names, "images", {name: {0: "batch"} for name in (*names, "images")})
    sets = [
        dict(zip(names, example_inputs(latent_dim, num_classes, n, seed), strict=True))
        for seed, n in enumerate((batch_size, batch_size, batch_size + 3))
    ]
    graph = GeneratorGraph(generator, conditional=num_classes > 0, truncation_psi=truncation_psi).eval()
    return graph, sig, sets, {"what": "generator", "truncation_psi": truncation_psi}


def _translator_export(
    ckpt_path: str | Path, ckpt: dict, direction: str, batch_size: int, img_size: int | None
) -> tuple[nn.Module, Signature, list, dict]:
    """The graph, signature, input sets (trace first) and description of an image-to-image translator
    (``ckpt``: the loaded checkpoint at ``ckpt_path``; load_translator checks which schemes translate)."""
    translator, config = load_translator(ckpt_path, direction, ckpt=ckpt)
    channels, trained = int(config["data"]["channels"]), int(config["data"]["img_size"])
    multiple = int(getattr(translator, "size_multiple", 0) or 0)
    size = int(img_size or trained)
    if multiple and size % multiple:
        raise ValueError(f"img_size must be a multiple of {multiple} for this translator; got {size}")
    dynamic = 0 < multiple < trained  # the U-Net's multiple is its training size: one size only
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    sig = Signature(("images",), "translated", {"images": axes, "translated": axes})
    other = (size + 2 * multiple, size + multiple) if dynamic else (size, size)
    cases = ((batch_size, (size, size)), (batch_size, (size, size)), (batch_size + 3, other))
    sets = [{"images": example_images(channels, n, hw, seed)} for seed, (n, hw) in enumerate(cases)]
    graph = TranslatorGraph(translator).eval()
    info = {
        "what": "translator",
        "direction": direction,
        "dynamic": list(axes.values()),
        "size_multiple": multiple or None,
        "sizes": [cases[1][1], cases[2][1]],
        "dropout_turned_off": graph.dropout_turned_off,
    }
    return graph, sig, sets, info


def export_generator(
    ckpt: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    batch_size: int = 4,
    ema: bool = True,
    atol: float = 1e-4,
    direction: str | None = None,
    img_size: int | None = None,
    truncation_psi: float = 1.0,
) -> dict[str, Any]:
    """Export a checkpoint's generator (GAN) or translator (image-to-image) and verify the file.

    Args:
        ckpt: a ganforge checkpoint (carries the run config, so no ``conf/`` is needed).
        fmt: ``"onnx"``, ``"torchscript"`` or ``"pt2"`` (``torch.export``).
        out: the file to write; default ``generator.<onnx|pt|pt2>`` (GAN) or
            ``translator_<direction>.<...>`` (image-to-image) beside the checkpoint.
        batch_size: batch of the trace; verification also runs on ``batch_size + 3``.
        ema: GAN only: export the EMA generator (what ganforge samples with) or the raw one.
        atol: largest allowed absolute difference between the export and PyTorch.
        direction: image-to-image only: ``AtoB`` (default) or ``BtoA`` (CycleGAN).
        img_size: image-to-image only: side of the trace's images (default: the training size);
            the fixed size of a translator whose size is not dynamic.
        truncation_psi: GAN only: truncation toward the average ``w``, baked into the graph
            (generators with a mapping network); 1 = none.

    Returns:
        ``{"path", "format", "max_abs_diff", "batch_sizes", "inputs", "what"}``; a translator's
        adds ``"direction"``, ``"dynamic"`` (the varying axes), ``"size_multiple"``, ``"sizes"``.

    Raises:
        CheckpointError: the checkpoint is missing, corrupt or foreign (the message names it).
        ExportError: the exported file's outputs differ from the network's by more than ``atol``.
        ValueError: an unknown format, a batch size below 1, or an option the checkpoint's kind
            does not take.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    loaded = load_checkpoint(ckpt)
    if loaded["ganforge"].get("scheme") in GAN_SCHEMES:
        if direction is not None or img_size is not None:
            raise ValueError(
                f"direction= and img_size= apply to image-to-image checkpoints; {ckpt} is a GAN's"
            )
        graph, sig, sets, info = _generator_export(loaded, batch_size, ema, float(truncation_psi))
        name = "generator"
    else:
        if float(truncation_psi) != 1:
            raise ValueError(
                f"truncation_psi= applies to GAN generators; {ckpt} is an image-to-image checkpoint"
            )
        direction = direction or "AtoB"
        graph, sig, sets, info = _translator_export(ckpt, loaded, direction, batch_size, img_size)
        name = f"translator_{direction}"
    out = Path(out) if out else Path(ckpt).with_name(name + SUFFIX[fmt])
    worst = write_verified(graph, fmt, out, sig, sets[0], sets[1:], atol, info["what"])
    sizes = tuple(int(s[sig.inputs[0]].shape[0]) for s in sets[1:])
    return {
        "path": out,
        "format": fmt,
        "max_abs_diff": worst,
        "batch_sizes": sizes,
        "inputs": list(sig.inputs),
        **info,
    }


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments over :data:`DEFAULTS`; unknown keys raise with the valid ones."""
    args = parse_key_values(argv, DEFAULTS)
    if not args["ckpt"]:
        raise ValueError("ckpt=<path> is required")
    if args["direction"] not in (None, "AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA; got {args['direction']!r}")
    return args


def describe(result: dict[str, Any], atol: float) -> str:
    """The line the command prints after a verified export."""
    first, second = result["batch_sizes"]
    if result["what"] == "generator":
        what = f"inputs: {', '.join(result['inputs'])}"
        if result.get("truncation_psi", 1) != 1:
            what += f", truncation psi {result['truncation_psi']:g} built in"
        checked = f"batches {first} and {second}"
    else:
        (h1, w1), (h2, w2) = result["sizes"]
        dynamic = ", ".join(result["dynamic"])
        if "height" in result["dynamic"] and result["size_multiple"] > 1:
            dynamic += f" (sides: multiples of {result['size_multiple']})"
        elif "height" in result["dynamic"]:
            dynamic += " (any sides)"
        else:
            dynamic += f"; size fixed at {h1}x{w1}"
        what = f"translator {result['direction']}, images in and out, dynamic: {dynamic}"
        if result["dropout_turned_off"]:
            what += "; test-time dropout off"
        checked = f"batches {first} at {h1}x{w1} and {second} at {h2}x{w2}"
    return (
        f"wrote {result['path']} ({result['format']}, {what}); verified against the checkpoint's "
        f"{result['what']} on {checked}: max |difference| = {result['max_abs_diff']:.2e} (atol {atol:g})"
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        result = export_generator(
            args["ckpt"],
            str(args["format"]),
            args["out"],
            int(args["batch_size"]),
            bool(args["ema"]),
            float(args["atol"]),
            args["direction"],
            int(args["img_size"]) if args["img_size"] is not None else None,
            float(args["truncation_psi"]),
        )
    except (ValueError, CheckpointError) as err:
        print_error("ganforge-export", err, USAGE)
        sys.exit(2)
    except ExportError as err:
        print(f"ganforge-export: verification FAILED: {err}", file=sys.stderr)
        sys.exit(1)
    print(describe(result, float(args["atol"])))


if __name__ == "__main__":
    main()

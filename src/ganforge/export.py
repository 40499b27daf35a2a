"""``ganforge-export``: a checkpoint's generator as ONNX, TorchScript or ``torch.export``, verified.

Usage:
    ganforge-export ckpt=outputs/dcgan_mnist5k/<run>/checkpoints/last.ckpt format=onnx out=generator.onnx
    ganforge-export ckpt=... format=torchscript out=generator.pt batch_size=16 ema=false
    ganforge-export ckpt=... format=pt2 out=generator.pt2     # torch.export, TorchScript's successor

The exported graph maps latents ``z (N, latent_dim)`` (and, for a conditional generator,
class ``labels (N,)`` int64) to images ``(N, C, H, W)`` in [-1, 1]; the batch dimension is
dynamic. After writing, the file is loaded again (ONNX with onnxruntime, TorchScript with
``torch.jit.load``, pt2 with ``torch.export.load``) and run on fresh inputs of two batch sizes; its outputs are compared with
the checkpoint's generator in PyTorch. A difference above ``atol`` is an error: the command
exits with status 1 and the file is removed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.utils.checkpoint import CheckpointError, load_generator
from ganforge.utils.cli import parse_key_values, print_error

FORMATS = ("onnx", "torchscript", "pt2")
USAGE = "usage: ganforge-export ckpt=<path> format=onnx|torchscript|pt2 [out=<file>] [batch_size=4] [ema=true] [atol=1e-4]"
DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "format": "onnx",
    "out": None,
    "batch_size": 4,
    "ema": True,
    "atol": 1e-4,
}
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}


class ExportError(RuntimeError):
    """The exported file does not reproduce the checkpoint's generator."""


class GeneratorGraph(nn.Module):
    """The generator with explicit graph inputs: ``(z)`` or ``(z, labels)`` when conditional."""

    def __init__(self, generator: nn.Module, conditional: bool):
        super().__init__()
        self.generator, self.conditional = generator, conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels if self.conditional else None)


def example_inputs(latent_dim: int, num_classes: int, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random ``(z,)`` or ``(z, labels)`` for ``n`` samples."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=rng)
    if not num_classes:
        return (z,)
    return z, torch.randint(0, num_classes, (n,), generator=rng)


def _export_onnx(graph: GeneratorGraph, inputs: tuple[torch.Tensor, ...], out: Path) -> None:
    names = ["z", "labels"][: len(inputs)]
    torch.onnx.export(
        graph,
        inputs,
        str(out),
        input_names=names,
        output_names=["images"],
        dynamic_axes={**{name: {0: "batch"} for name in names}, "images": {0: "batch"}},
        dynamo=False,  # the TorchScript-based exporter: one self-contained file, any batch size
    )


def _run_onnx(path: Path, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    given = dict(zip(("z", "labels"), inputs, strict=False))
    feeds = {arg.name: given[arg.name].numpy() for arg in session.get_inputs()}
    return torch.from_numpy(session.run(None, feeds)[0])


def _export_torchscript(graph: GeneratorGraph, inputs: tuple[torch.Tensor, ...], out: Path) -> None:
    traced = torch.jit.trace(graph, inputs, check_trace=False)
    torch.jit.save(traced, str(out))


def _run_torchscript(path: Path, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(*inputs)


def _export_pt2(graph: GeneratorGraph, inputs: tuple[torch.Tensor, ...], out: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(graph, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs))
    torch.export.save(program, str(out))


def _run_pt2(path: Path, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        return torch.export.load(str(path)).module()(*inputs)


# format -> (write the file, run the written file on inputs)
_WRITERS = {
    "onnx": (_export_onnx, _run_onnx),
    "torchscript": (_export_torchscript, _run_torchscript),
    "pt2": (_export_pt2, _run_pt2),
}


def export_generator(
    ckpt: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    batch_size: int = 4,
    ema: bool = True,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Export a checkpoint's generator and verify the file against it.

    Args:
        ckpt: a ganforge checkpoint (carries the run config, so no ``conf/`` is needed).
        fmt: ``"onnx"``, ``"torchscript"`` or ``"pt2"`` (``torch.export``).
        out: the file to write; default ``generator.<onnx|pt|pt2>`` beside the checkpoint.
        batch_size: batch of the trace; verification also runs on ``batch_size + 3``.
        ema: export the EMA generator (what ganforge samples with) or the raw one.
        atol: largest allowed absolute difference between the export and PyTorch.

    Returns:
        ``{"path", "format", "max_abs_diff", "batch_sizes", "inputs"}``.

    Raises:
        CheckpointError: the checkpoint is missing, corrupt or foreign (the message names it).
        ExportError: the exported file's outputs differ from the generator's by more than ``atol``.
        ValueError: an unknown format or a batch size below 1.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    generator, config = load_generator(ckpt, ema=ema)
    model_cfg = config["model"]
    latent_dim, num_classes = int(model_cfg["latent_dim"]), int(model_cfg.get("num_classes") or 0)
    graph = GeneratorGraph(generator, conditional=num_classes > 0).eval()
    out = Path(out) if out else Path(ckpt).with_name("generator" + SUFFIX[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    trace_inputs = example_inputs(latent_dim, num_classes, batch_size, seed=0)
    with torch.no_grad():
        write, run = _WRITERS[fmt]
        write(graph, trace_inputs, out)
    worst, sizes = 0.0, (batch_size, batch_size + 3)
    for seed, n in enumerate(sizes, start=1):
        inputs = example_inputs(latent_dim, num_classes, n, seed)
        with torch.no_grad():
            expected = graph(*inputs).float()
        got = run(out, inputs).float()
        if got.shape != expected.shape:
            out.unlink(missing_ok=True)
            raise ExportError(
                f"{out}: output shape {tuple(got.shape)} != generator's {tuple(expected.shape)}"
            )
        worst = max(worst, (got - expected).abs().max().item())
    if not worst <= atol:
        out.unlink(missing_ok=True)
        raise ExportError(
            f"{fmt} export of {ckpt} does not match its generator: max |difference| = {worst:.3g} > atol {atol:g}"
        )
    return {
        "path": out,
        "format": fmt,
        "max_abs_diff": worst,
        "batch_sizes": sizes,
        "inputs": ["z", "labels"][: len(trace_inputs)],
    }


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments over :data:`DEFAULTS`; unknown keys raise with the valid ones."""
    args = parse_key_values(argv, DEFAULTS)
    if not args["ckpt"]:
        raise ValueError("ckpt=<path> is required")
    return args


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
        )
    except (ValueError, CheckpointError) as err:
        print_error("ganforge-export", err, USAGE)
        sys.exit(2)
    except ExportError as err:
        print(f"ganforge-export: verification FAILED: {err}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {result['path']} ({result['format']}, inputs: {', '.join(result['inputs'])}); "
        f"verified against the checkpoint's generator on batches {result['batch_sizes'][0]} and "
        f"{result['batch_sizes'][1]}: max |difference| = {result['max_abs_diff']:.2e} (atol {args['atol']:g})"
    )


if __name__ == "__main__":
    main()

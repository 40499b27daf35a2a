"""ganforge-export: ONNX and TorchScript files that reproduce the checkpoint's generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest
import torch
from torch import nn

from ganforge import export as export_module
from ganforge.export import ExportError, export_generator
from ganforge.networks.dcgan import DCGANGenerator
from ganforge.train import train
from ganforge.utils.checkpoint import CheckpointError, load_generator
from tests.conftest import compose_tiny

BIN = Path(sys.executable).parent
# TorchScript is deprecated in torch 2.14 but still what many serving stacks load.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")


class ConditionalDCGANGenerator(nn.Module):
    """A minimal class-conditional generator for the test: a label embedding added to ``z``."""

    def __init__(self, num_classes: int, latent_dim: int, img_size: int, channels: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.net = DCGANGenerator(latent_dim, img_size, channels, width)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z + self.embed(labels) if labels is not None else z)


def run_exported(fmt: str, path: Path, z: torch.Tensor) -> torch.Tensor:
    """The images an exported generator file gives for latents ``z``, loaded as a user would."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    if fmt == "torchscript":
        return torch.jit.load(str(path))(z)
    return torch.export.load(str(path)).module()(z)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One tiny trained checkpoint shared by the tests of this file."""
    root = tmp_path_factory.mktemp("export")
    train(compose_tiny(root, ["data.img_size=16", "model.latent_dim=16"]))
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_export_reproduces_generator(checkpoint, tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    result = export_generator(checkpoint, fmt, out, batch_size=3)
    assert out.is_file() and result["max_abs_diff"] < 1e-4 and result["inputs"] == ["z"]
    # Independently of the built-in check: load the file and compare on a batch size not traced.
    generator, _ = load_generator(checkpoint)
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = generator(z)
    got = run_exported(fmt, out, z)
    assert got.shape == (5, 1, 16, 16)
    # A barely trained G draws faint images (|x| ~ 1e-3), so the tolerance is relative as well.
    assert expected.abs().max() > 1e-4
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-6)


def test_conditional_generator_exports_labels(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        [
            "data.img_size=16",
            "model.latent_dim=16",
            "model.num_classes=10",
            f"+model.generator.num_classes={10}",
            f"model.generator._target_={ConditionalDCGANGenerator.__module__}.ConditionalDCGANGenerator",
        ]
    )
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = export_generator(ckpt, "onnx", tmp_path / "c.onnx")
    assert result["inputs"] == ["z", "labels"] and result["max_abs_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"])
    z = torch.zeros(2, 16).numpy()
    a, b = session.run(None, {"z": z, "labels": torch.tensor([0, 7]).numpy()})[0]
    assert abs(a - b).max() > 1e-3  # the label changes the image


def test_mismatch_fails_and_removes_file(checkpoint, tmp_path, monkeypatch):
    write, run = export_module._WRITERS["torchscript"]
    monkeypatch.setitem(export_module._WRITERS, "torchscript", (write, lambda p, x: run(p, x) + 1e-3))
    out = tmp_path / "bad.pt"
    with pytest.raises(ExportError, match="does not match"):
        export_generator(checkpoint, "torchscript", out)
    assert not out.exists()


def test_bad_inputs_are_named(tmp_path):
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(CheckpointError, match="not found") as info:
        export_generator(missing, "onnx")
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError, match="format must be one of onnx, torchscript, pt2"):
        export_generator(missing, "tflite")


@pytest.mark.slow
def test_cli_exports_and_reports(checkpoint, tmp_path):
    """The console script as a user runs it."""
    ok = subprocess.run(
        [str(BIN / "ganforge-export"), f"ckpt={checkpoint}", "format=onnx", f"out={tmp_path / 'g.onnx'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "verified" in ok.stdout and (tmp_path / "g.onnx").is_file()


def test_cli_names_a_bad_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export_module.main([f"ckpt={tmp_path / 'nope.ckpt'}", "format=onnx"])
    assert info.value.code == 2 and "nope.ckpt" in capsys.readouterr().err

"""ganforge-export: ONNX, TorchScript and pt2 files that reproduce a checkpoint's generator or translator."""

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
from ganforge.translate import load_translator
from ganforge.utils.checkpoint import CheckpointError, load_generator
from tests.conftest import compose_tiny
from tests.test_speed import TRANSLATION

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


def run_exported(fmt: str, path: Path, x: torch.Tensor, name: str = "z") -> torch.Tensor:
    """What an exported file gives for its one input ``name`` (latents or images), loaded as a user would."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    with torch.no_grad():
        if fmt == "torchscript":
            return torch.jit.load(str(path))(x)
        return torch.export.load(str(path)).module()(x)


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


# ----------------------------------------------------------------- image-to-image translators
# Tiny checkpoints of a quick training run, composed from the groups as the speed tests compose
# them: CycleGAN and CUT at 16 px with one residual block (fully convolutional: sides of any
# multiple of 4; CUT's generator blur-pools), pix2pix at 64 px (a U-Net of 6 levels, the
# innermost with the paper's dropout, on at test time by its config).
TINY_RUN = ["data.batch_size=2", "++trainer.limit_val_batches=0"]
TRANSLATION_RUNS = {
    "cyclegan": [*TRANSLATION["cyclegan"], "data.img_size=16", *TINY_RUN],
    "cut": [*TRANSLATION["cut"], "data.img_size=16", *TINY_RUN],
    "pix2pix": [*TRANSLATION["pix2pix"], "data.photo_size=80", "data.img_size=64", "data.load_size=68"]
    + TINY_RUN,
}


@pytest.fixture(scope="module")
def translation_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_translation")
    for name, overrides in TRANSLATION_RUNS.items():
        train(compose_tiny(root / name, overrides))
    return {name: root / name / "run" / "checkpoints" / "last.ckpt" for name in TRANSLATION_RUNS}


@pytest.mark.parametrize(
    ("scheme", "fmt", "direction"),
    [
        ("cyclegan", "onnx", "AtoB"),
        ("cyclegan", "torchscript", "AtoB"),
        ("cyclegan", "pt2", "AtoB"),
        ("cyclegan", "onnx", "BtoA"),
        ("cut", "onnx", "AtoB"),
        ("cut", "pt2", "AtoB"),
    ],
)
def test_resnet_translator_exports_with_dynamic_batch_and_size(
    translation_checkpoints, tmp_path, scheme, fmt, direction
):
    ckpt = translation_checkpoints[scheme]
    out = tmp_path / f"t.{fmt}"
    result = export_generator(ckpt, fmt, out, batch_size=2, direction=direction)
    assert out.is_file() and result["max_abs_diff"] < 1e-4 and result["inputs"] == ["images"]
    assert result["dynamic"] == ["batch", "height", "width"] and result["size_multiple"] == 4
    assert result["batch_sizes"] == (2, 5) and result["sizes"] == [(16, 16), (24, 20)]
    # Independently of the built-in check: another batch and a size of neither check, not square.
    net, _ = load_translator(ckpt, direction)
    x = torch.rand(3, 1, 12, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        expected = net(x)
    got = run_exported(fmt, out, x, name="images")
    assert got.shape == (3, 1, 12, 28)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_two_cyclegan_directions_are_two_networks(translation_checkpoints, tmp_path):
    ckpt = translation_checkpoints["cyclegan"]
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outputs = []
    for direction in ("AtoB", "BtoA"):
        result = export_generator(ckpt, "torchscript", batch_size=1, direction=direction)
        assert result["path"] == ckpt.with_name(f"translator_{direction}.pt")  # the default name
        outputs.append(run_exported("torchscript", result["path"], x))
    assert (outputs[0] - outputs[1]).abs().max() > 1e-4


def test_pix2pix_exports_its_training_size_without_test_time_dropout(translation_checkpoints, tmp_path):
    """The U-Net takes its training size down to 1x1: one size. Its test-time dropout is the
    model's noise; the export is the deterministic translator (dropout off), verified as such."""
    ckpt = translation_checkpoints["pix2pix"]
    net, _ = load_translator(ckpt)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # the checkpoint's translator draws at test time
    result = export_generator(ckpt, "onnx", tmp_path / "p.onnx", batch_size=2)
    assert result["dynamic"] == ["batch"] and result["dropout_turned_off"] and result["max_abs_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, 64, 64]
    got = run_exported("onnx", tmp_path / "p.onnx", x, name="images")
    torch.testing.assert_close(
        got, run_exported("onnx", tmp_path / "p.onnx", x, name="images"), rtol=0, atol=0
    )
    for module in net.modules():
        if hasattr(module, "at_eval"):
            module.at_eval = False
    with torch.no_grad():
        torch.testing.assert_close(got, net(x), rtol=1e-4, atol=1e-5)  # the network with dropout off
    with pytest.raises(ValueError, match="multiple of 64"):
        export_generator(ckpt, "onnx", tmp_path / "q.onnx", img_size=96)
    with pytest.raises(CheckpointError, match="translates AtoB only"):
        export_generator(ckpt, "onnx", tmp_path / "q.onnx", direction="BtoA")


def test_translator_mismatch_exits_1_and_removes_the_file(
    translation_checkpoints, tmp_path, monkeypatch, capsys
):
    write, run = export_module._WRITERS["onnx"]
    monkeypatch.setitem(export_module._WRITERS, "onnx", (write, lambda p, x: run(p, x) + 1e-3))
    out = tmp_path / "bad.onnx"
    with pytest.raises(SystemExit) as info:
        export_module.main([f"ckpt={translation_checkpoints['cyclegan']}", "format=onnx", f"out={out}"])
    assert info.value.code == 1 and "does not match its translator" in capsys.readouterr().err
    assert not out.exists()


def test_translator_cli_reports_what_it_verified(translation_checkpoints, tmp_path, capsys):
    out = tmp_path / "t.pt2"
    export_module.main(
        [f"ckpt={translation_checkpoints['cyclegan']}", "format=pt2", f"out={out}", "batch_size=1"]
    )
    line = capsys.readouterr().out
    assert (
        "translator AtoB" in line and "multiples of 4" in line and "batches 1 at 16x16 and 4 at 24x20" in line
    )


def test_options_of_the_other_kind_are_refused(checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match="apply to image-to-image checkpoints"):
        export_generator(checkpoint, "onnx", tmp_path / "g.onnx", direction="BtoA")
    with pytest.raises(SystemExit) as info:
        export_module.main([f"ckpt={checkpoint}", "direction=sideways"])
    assert info.value.code == 2 and "direction must be AtoB or BtoA" in capsys.readouterr().err


def test_truncation_is_refused_for_a_generator_without_a_mapping_network(checkpoint, tmp_path):
    from ganforge.config import ConfigError
    from ganforge.generate import generate

    with pytest.raises(ConfigError, match="DCGANGenerator has no mapping network"):
        export_generator(checkpoint, "onnx", tmp_path / "g.onnx", truncation_psi=0.7)
    assert not (tmp_path / "g.onnx").exists()
    with pytest.raises(ConfigError, match="DCGANGenerator has no mapping network"):
        generate(checkpoint, 2, truncation_psi=0.7)

"""What only a CUDA GPU can show: both schemes training under fp32, bf16 and fp16 mixed precision,
clipping under fp16 loss scaling, quality metrics equal on CUDA and CPU, and the export of a
GPU-trained checkpoint.

Marked ``gpu`` and skipped without CUDA; ``bash benchmarks/gpu_check.sh`` runs them with the GPU
benchmarks. Everything goes through the public entry points (``ganforge.train.train`` on a composed
config, the evaluator, the ``ganforge-export`` console script), not the modules' internals.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning import Callback
from torch import nn

from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint, load_generator
from tests.conftest import compose_tiny
from tests.helpers import NormRecordingAdam
from tests.test_export import run_exported

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning"),
]

BIN = Path(sys.executable).parent
GPU = ["trainer.accelerator=gpu", "trainer.devices=1"]
AUTOCAST = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
TRANSLATION = {  # shrunk as in tests/test_image2image.py
    "cyclegan": [
        "experiment=cyclegan_digits2mnist",
        "data.img_size=16",
        "data.load_size=16",
        "model.generator.n_blocks=1",
    ],
    "pix2pix": [
        "experiment=pix2pix_edges2photos",
        "data.photo_size=40",
        "data.img_size=32",
        "data.load_size=36",
    ],
}
N_FAKE = 1000  # the default evaluation size (conf/metrics/domain.yaml)


class DeviceProbe(Callback):
    """Records the device of every training step and the dtypes its convolutions produced."""

    seen: ClassVar[dict] = {}
    _in_step = False

    def on_fit_start(self, trainer, pl_module) -> None:
        DeviceProbe.seen = {"devices": set(), "conv_dtypes": set(), "steps": 0}
        for module in pl_module.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.register_forward_hook(self._record)

    @classmethod
    def _record(cls, module, inputs, output) -> None:
        if cls._in_step:  # training steps only: sample grids and validation are not autocast alike
            cls.seen["conv_dtypes"].add(output.dtype)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        DeviceProbe._in_step = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        DeviceProbe._in_step = False
        DeviceProbe.seen["devices"].add(pl_module.device.type)
        DeviceProbe.seen["steps"] += 1


PROBE = f"+callbacks.device_probe._target_={__name__}.DeviceProbe"


def check_run(run_dir: Path, metrics: dict[str, float], precision: str) -> None:
    """The run trained on CUDA under ``precision`` and saved finite fp32 weights."""
    seen = DeviceProbe.seen
    assert seen["steps"] >= 1 and seen["devices"] == {"cuda"}, seen
    if precision == "32-true":
        assert seen["conv_dtypes"] == {torch.float32}, seen
    else:
        assert AUTOCAST[precision] in seen["conv_dtypes"], seen
    losses = {k: v for k, v in metrics.items() if k.startswith("train/")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    weights = {k: v for k, v in state.items() if v.is_floating_point()}
    assert all(v.dtype == torch.float32 for v in weights.values())  # master weights stay fp32
    assert all(torch.isfinite(v).all() for v in weights.values())
    dtypes = sorted(str(d).removeprefix("torch.") for d in seen["conv_dtypes"])
    print(
        f"{precision}: {seen['steps']} steps on {'+'.join(seen['devices'])}, conv outputs {dtypes}, {losses}"
    )


@pytest.mark.parametrize("precision", list(AUTOCAST))
def test_gan_trains_on_gpu(tiny_cfg, tmp_path, precision):
    metrics = train(tiny_cfg([*GPU, f"trainer.precision={precision}", PROBE]))
    check_run(tmp_path / "run", metrics, precision)


@pytest.mark.parametrize("precision", list(AUTOCAST))
@pytest.mark.parametrize("scheme", sorted(TRANSLATION))
def test_image2image_trains_on_gpu(tiny_cfg, tmp_path, scheme, precision):
    metrics = train(tiny_cfg([*TRANSLATION[scheme], *GPU, f"trainer.precision={precision}", PROBE]))
    check_run(tmp_path / "run", metrics, precision)


@pytest.mark.parametrize("clip", [1.0, 1e-3])
def test_grad_clip_under_fp16_loss_scaling_on_gpu(tiny_cfg, tmp_path, clip):
    """CUDA's GradScaler starts at 2**16: clipping scaled gradients would leave norms far below ``clip``."""
    optimizer = f"{NormRecordingAdam.__module__}.NormRecordingAdam"
    NormRecordingAdam.norms = []
    cfg = tiny_cfg(
        [
            *GPU,
            "trainer.precision=16-mixed",
            f"model.grad_clip={clip}",
            "++trainer.limit_train_batches=4",  # room for steps the scaler skips while it settles
            f"optimizer.generator._target_={optimizer}",
            f"optimizer.discriminator._target_={optimizer}",
            PROBE,
        ]
    )
    metrics = train(cfg)
    check_run(tmp_path / "run", metrics, "16-mixed")
    norms = NormRecordingAdam.norms
    assert len(norms) >= 2, norms  # at least one D and one G step were not skipped
    if clip == 1.0:  # the setting: no norm above the limit
        assert all(n <= clip * 1.01 for n in norms), norms
    else:  # a limit below every gradient norm: each step lands on it
        assert all(n == pytest.approx(clip, rel=1e-2) for n in norms), norms


@pytest.fixture(scope="module")
def gpu_checkpoint(tmp_path_factory) -> Path:
    """A tiny DCGAN trained on the GPU for 210 iterations (3 epochs of batch 64), shared by the tests below."""
    root = tmp_path_factory.mktemp("gpu_run")
    overrides = [
        *GPU,
        "data.img_size=16",
        "model.latent_dim=16",
        "data.batch_size=64",
        "trainer.max_epochs=3",
    ]
    overrides.append("++trainer.limit_train_batches=1.0")  # whole epochs: samples a classifier can tell apart
    train(compose_tiny(root, overrides))
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("tf32", [False, True], ids=["fp32-math", "tf32-convolutions"])
def test_metrics_on_cuda_equal_cpu(gpu_checkpoint, tf32):
    """FID, KID, IS and precision/recall of one checkpoint's samples, scored on each device.

    The samples are drawn once on the CPU, so only embedding and metric arithmetic differ.
    ``tf32-convolutions`` is PyTorch's default for cuDNN (``allow_tf32``), and so what a GPU run
    of the evaluator gets unless it turns TF32 off.
    """
    generator, config = load_generator(gpu_checkpoint)
    z = torch.randn(N_FAKE, int(config["model"]["latent_dim"]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fakes = generator(z)
    datamodule = instantiate(OmegaConf.create(config).data)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        results = {}
        for device in ("cpu", "cuda"):
            evaluator = MetricEvaluator(names=["fid", "kid", "is", "pr"], n_fake=N_FAKE, cache_dir=None)
            evaluator.to(device)
            real = evaluator.real_statistics(datamodule.metric_reals("val"), datamodule.dataset_id)
            results[device] = evaluator.evaluate(fakes.split(250), real)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    cpu, cuda = results["cpu"], results["cuda"]
    diffs = {k: abs(cpu[k] - cuda[k]) for k in cpu}
    print(f"tf32={tf32}: cpu {cpu}\n  cuda {cuda}\n  |diff| {diffs}")
    assert set(cpu) == set(cuda) and {"val/fid", "val/kid_mean", "val/precision"} <= set(cpu)
    for key, value in cpu.items():
        assert diffs[key] <= 1e-4 * max(1.0, abs(value)), (key, value, cuda[key])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_export_of_a_gpu_trained_checkpoint(gpu_checkpoint, tmp_path, fmt):
    """``ganforge-export`` as a user runs it, then the file checked independently (as in test_export)."""
    out = tmp_path / f"g.{fmt}"
    ok = subprocess.run(
        [str(BIN / "ganforge-export"), f"ckpt={gpu_checkpoint}", f"format={fmt}", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "verified" in ok.stdout and out.is_file()
    generator, _ = load_generator(gpu_checkpoint)
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = generator(z)
    got = run_exported(fmt, out, z)
    assert got.shape == (5, 1, 16, 16) and expected.abs().max() > 1e-4
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-6)

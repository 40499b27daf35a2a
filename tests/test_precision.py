"""Mixed precision with manual optimization: bf16 on CPU, fp16 loss scaling and clipping."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.plugins import MixedPrecision

from ganforge.config import ConfigError, validate_config
from ganforge.train import build_module, train
from tests.helpers import NormRecordingAdam, bare_trainer


def fit(cfg, **trainer_kwargs) -> pl.LightningModule:
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    bare_trainer(**trainer_kwargs).fit(module, datamodule=datamodule)
    return module


def test_bf16_mixed_trains_on_cpu(tiny_cfg):
    cfg = tiny_cfg(["trainer.precision=bf16-mixed"])
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    seen: set[torch.dtype] = set()
    module.discriminator.net[0].register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    before = {
        k: v.clone() for k, v in module.state_dict().items() if k.startswith(("generator.", "discriminator."))
    }
    trainer = instantiate(
        cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=datamodule)
    assert torch.bfloat16 in seen  # convolutions ran under bf16 autocast
    assert (
        all(torch.isfinite(v).all() for v in module.last_losses.values())
        and "train/g_loss" in module.last_losses
    )
    for key, value in before.items():
        if key.endswith("weight"):
            after = module.state_dict()[key]
            assert after.dtype == torch.float32  # master weights stay fp32
            assert not torch.equal(after, value), f"{key} did not change"


def test_clipping_sees_unscaled_gradients_under_fp16_loss_scaling(tiny_cfg):
    """With a GradScaler at 2**16, clipping scaled gradients would leave norms 65,536x below the limit."""
    clip = 1e-3
    cfg = tiny_cfg(
        [
            f"model.grad_clip={clip}",
            f"optimizer.discriminator._target_={NormRecordingAdam.__module__}.NormRecordingAdam",
            f"optimizer.generator._target_={NormRecordingAdam.__module__}.NormRecordingAdam",
        ]
    )
    NormRecordingAdam.norms = []
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    fit(cfg, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert len(NormRecordingAdam.norms) >= 2  # at least one D and one G step were not skipped
    for norm in NormRecordingAdam.norms:
        assert norm == pytest.approx(clip, rel=1e-2)


@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_fp16_mixed_without_gpu_is_rejected(tiny_cfg, accelerator):
    cfg = tiny_cfg(["trainer.precision=16-mixed", f"trainer.accelerator={accelerator}"])
    if torch.cuda.is_available() and accelerator == "auto":
        validate_config(cfg)  # fine where a GPU is present
        return
    with pytest.raises(ConfigError, match="trainer.precision=16-mixed needs a CUDA GPU.*bf16-mixed"):
        validate_config(cfg)


def test_gradient_clipping_under_bf16_mixed_uses_an_unfused_optimizer(tiny_cfg):
    # Lightning refuses to clip for a fused optimizer (it unscales itself) under any mixed precision.
    metrics = train(tiny_cfg(["trainer.precision=bf16-mixed", "model.grad_clip=1.0"]))
    assert torch.isfinite(torch.tensor(metrics["train/g_loss"]))

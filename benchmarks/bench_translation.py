"""Seconds per training iteration and peak memory of CycleGAN (Zhu et al. 2017) at the paper's size.

The networks come from ``conf/model/cyclegan.yaml`` as composed (``model=cyclegan loss=cyclegan
optimizer=adam_linear_decay``, 3 channels): two ResNet translators of 9 residual blocks and width
64, two 70x70 PatchGANs of width 64, the image pools, Adam. The real image-to-image module, built by
``ganforge.train.build_module``, trains in a Lightning ``Trainer`` on random images (a small bank of
fixed tensors, so data costs nothing): ``warmup`` iterations, then ``iters`` timed ones between
device synchronisations, then one more under ``torch.utils.flop_counter.FlopCounterMode``.
Peak memory is ``torch.cuda.max_memory_allocated`` over the timed iterations on a GPU (reset when
they start), the process's peak resident set on the CPU.

Defaults: 256 px on a GPU (the paper's), 64 px on the CPU (a 256 px step takes about a minute
there); ``--img-size 32 --blocks 2`` is a test-sized run.

Usage:
    python benchmarks/bench_translation.py                                  # GPU if present, batch 1 and 4
    python benchmarks/bench_translation.py --device cuda --precision 32-true bf16-mixed
    python benchmarks/bench_translation.py --device cpu --img-size 32 --blocks 2 --iters 2 --warmup 1
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import open_dict
from pytorch_lightning import Callback
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import print_table, resolve_device  # noqa: E402
from machine import PeakMemory  # noqa: E402

from ganforge.config import compose_config  # noqa: E402
from ganforge.train import build_module  # noqa: E402

CYCLEGAN = ["model=cyclegan", "loss=cyclegan", "optimizer=adam_linear_decay", "callbacks=image2image"]


class RandomPairs(Dataset):
    """``{"A", "B"}`` pairs of random images in [-1, 1], drawn once from a bank of ``bank`` images."""

    def __init__(self, length: int, channels: int, img_size: int, bank: int = 8):
        rng = torch.Generator().manual_seed(0)
        self.images = torch.rand(bank, channels, img_size, img_size, generator=rng) * 2 - 1
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.images)
        return {"A": self.images[i % n], "B": self.images[(i + 1) % n]}


class StepTimer(Callback):
    """Times iterations ``warmup .. warmup + iters - 1`` as one window; counts FLOPs of the next one."""

    def __init__(self, warmup: int, iters: int, device: str):
        self.warmup, self.iters, self.device = warmup, iters, device
        self.seconds, self.flops = float("nan"), float("nan")
        self.memory = PeakMemory(device)
        self._counter: FlopCounterMode | None = None
        self._start = 0.0

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self._sync()
            self.memory.__enter__()
            self._start = time.perf_counter()
        elif batch_idx == self.warmup + self.iters:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.warmup + self.iters - 1:
            self._sync()
            self.seconds = time.perf_counter() - self._start
            self.memory.__exit__()
        elif self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops, self._counter = float(self._counter.get_total_flops()), None


def compose(
    img_size: int, blocks: int, width: int | None, batch_size: int, run_dir: str, more: tuple[str, ...] = ()
):
    """The composed CycleGAN config at ``img_size`` with ``blocks`` residual blocks (widths from the
    config unless ``width``), and the overrides ``more``."""
    overrides = [
        *CYCLEGAN,
        "data=photo2painting",
        f"data.img_size={img_size}",
        f"data.batch_size={batch_size}",
    ]
    overrides.append(f"model.generator.n_blocks={blocks}")
    if width:
        overrides += [f"model.generator.width={width}", f"model.discriminator.width={width}"]
    cfg = compose_config([*overrides, *more])
    with open_dict(cfg):
        cfg.paths.output_dir = run_dir
        cfg.paths.outputs_root = run_dir
    return cfg


def bare_trainer(device: str, precision: str, n_batches: int, callbacks: list[Callback]) -> pl.Trainer:
    """A ``Trainer`` for one epoch of ``n_batches`` training batches with nothing but ``callbacks``:
    no validation, loggers, checkpoints or progress bar."""
    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        benchmark=device == "cuda",  # fixed sizes: cuDNN picks its fastest kernels (trainer=gpu does too)
        max_epochs=1,
        limit_train_batches=n_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def measure_one(
    img_size: int,
    blocks: int,
    width: int | None,
    batch_size: int,
    device: str,
    precision: str,
    warmup: int,
    iters: int,
) -> dict:
    """One timed run; returns seconds per iteration, images/s, peak memory, FLOPs and the widths used."""
    pl.seed_everything(0, workers=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(img_size, blocks, width, batch_size, tmp)
        module = build_module(cfg, None)
        n_batches = warmup + iters + 1
        data = RandomPairs(n_batches * batch_size, int(cfg.data.channels), img_size)
        timer = StepTimer(warmup, iters, device)
        trainer = bare_trainer(device, precision, n_batches, [timer])
        trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=batch_size, drop_last=True))
    per_iter = timer.seconds / iters
    return {
        "s_per_iter": per_iter,
        "images_per_s": batch_size / per_iter,
        "peak_mb": timer.memory.peak_mb,
        "added_mb": timer.memory.added_mb,
        "gflop_per_iter": timer.flops / 1e9,
        "achieved_tflops": timer.flops / per_iter / 1e12,
        "widths": f"G {cfg.model.generator.width} x {cfg.model.generator.n_blocks} blocks, "
        f"D {cfg.model.discriminator.width}",
    }


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    """Command line (see the module docstring); returns one table row per precision and batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--img-size", type=int, default=None, help="default: 256 on a GPU, 64 on the CPU")
    parser.add_argument("--blocks", type=int, default=9, help="residual blocks of each translator (paper: 9)")
    parser.add_argument("--width", type=int, default=None, help="G and D width (default: the config's, 64)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--precision", nargs="+", default=["32-true"], help="trainer.precision values")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 5; CPU 2)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (default 20; CPU 5)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 3 timed iterations")
    args, _ = parser.parse_known_args(argv)
    device = resolve_device(args.device)
    gpu = device == "cuda"
    img_size = args.img_size or (256 if gpu else 64)
    warmup = args.warmup or (1 if args.quick else 5 if gpu else 2)
    iters = args.iters or (3 if args.quick else 20 if gpu else 5)
    for name in ("pytorch_lightning", "lightning_fabric"):  # keep the table readable
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    where = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    memory = "peak CUDA memory allocated (MB)" if gpu else "peak RSS (MB)"
    unit, scale = ("TFLOP/s", 1.0) if gpu else ("GFLOP/s", 1e3)
    rows = []
    for precision in args.precision:
        for batch_size in args.batch_sizes:
            r = measure_one(img_size, args.blocks, args.width, batch_size, device, precision, warmup, iters)
            rows.append(
                {
                    "run": f"{img_size} px, batch {batch_size}, {precision}",
                    "s/iteration": f"{r['s_per_iter']:.4f}",
                    "images/s": f"{r['images_per_s']:.1f}",
                    memory: f"{r['peak_mb']:.0f}",
                    "GFLOP/iteration": f"{r['gflop_per_iter']:.3f}",
                    f"achieved {unit}": f"{r['achieved_tflops'] * scale:.2f}",
                }
            )
    print(
        f"CycleGAN training step on {where}, torch {torch.__version__}: {r['widths']}; "
        f"{warmup} warm-up + {iters} timed iterations per row"
    )
    return rows


if __name__ == "__main__":
    print_table("CycleGAN seconds per iteration and peak memory", main(sys.argv[1:]))

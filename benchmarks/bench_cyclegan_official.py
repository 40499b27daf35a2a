"""CycleGAN training iterations: ganforge against a plain loop of the official step, in turns.

Both train CycleGAN (Zhu et al. 2017) as ``conf/model/cyclegan.yaml`` builds it: two ResNet
translators (9 residual blocks, width 64, instance norm), two 70x70 PatchGANs (width 64), LSGAN
loss, cycle weight 10, identity weight 5, image pools of 50, Adam 2e-4 / (0.5, 0.999), on the same
random images (a bank of 8 fixed tensors, so data costs nothing):

* **official**: a plain PyTorch loop of the reference code's step (``cycle_gan_model.py``,
  ``optimize_parameters``), written here from it: the forward pass (``fake_B = G_A(A)``,
  ``rec_A = G_B(fake_B)``, ``fake_A = G_B(B)``, ``rec_B = G_A(fake_A)``), one step of both
  generators with both discriminators frozen (``requires_grad=False``; identity, adversarial and
  cycle terms summed, one backward), then both discriminators (each on its real batch and a
  history-pool batch, one backward each, one step), per-tensor Adam, NCHW, fp32.
* **ganforge**: the real ``CycleGANModule`` built from the composed config
  (``model=cyclegan loss=cyclegan optimizer=adam_linear_decay``) in a Lightning ``Trainer``,
  with one of the settings below. No loggers or epoch-end callbacks (they fall outside the timed
  iterations in ``bench_train.py`` as well).

Settings of the ganforge side (``--settings``): ``default`` (the config as it is: fp32, NCHW,
fused Adam); ``bf16`` (``trainer.precision=bf16-mixed``, what ``trainer=gpu`` uses: convolutions
in bfloat16 under autocast, fp32 weights; on a CPU with AMX or AVX512-BF16 units they run on
those); ``channels_last`` (``model.channels_last=true``); ``compile`` (``model.compile=true``,
inductor; its compile time falls in the warm-up). ``recommended`` is ``bf16``.

Both loops start from the same weights (one seed, networks built in the config's order) and read
the same batches, so in fp32 their first iteration's losses agree to float rounding; the table
shows the largest relative difference. The loops take turns inside one process: after
``warmup`` iterations of each, every ganforge iteration is followed by one official iteration,
``iters`` times, so a change in the shared machine's speed reaches both. The speed-up is the
official loop's seconds over ganforge's, per turn (median and range) and of the medians.

Usage:
    python benchmarks/bench_cyclegan_official.py                 # 64 and 128 px, batch 1 and 4, default and recommended
    python benchmarks/bench_cyclegan_official.py --quick         # 64 px, batch 1, 2 turns
    python benchmarks/bench_cyclegan_official.py --sizes 64 --batch-sizes 1 --settings default channels_last compile
    python benchmarks/bench_cyclegan_official.py --threads 1     # one core: steadier on a busy machine (~5 min)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning import Callback
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import Interleaved, print_table  # noqa: E402
from bench_translation import RandomPairs, bare_trainer, compose  # noqa: E402
from machine import cpu_info  # noqa: E402

from ganforge.train import build_module  # noqa: E402

# setting -> (trainer.precision, config overrides) of the ganforge side
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "default": ("32-true", []),
    "bf16": ("bf16-mixed", []),
    "channels_last": ("32-true", ["model.channels_last=true"]),
    "compile": ("32-true", ["model.compile=true"]),
}
SETTINGS["recommended"] = SETTINGS["bf16"]


def set_requires_grad(nets: list[nn.Module], requires_grad: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad = requires_grad


class HistoryPool:
    """The reference code's image pool: up to ``size`` generated images; once full, each new image
    is returned as is or, with probability 1/2, swapped for a stored one (Python's ``random``)."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.data:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                slot = random.randint(0, self.size - 1)
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class OfficialStep:
    """CycleGAN's reference training step as a plain loop (names as in ``cycle_gan_model.py``:
    ``G_A: A -> B``, ``G_B: B -> A``, ``D_A`` judges B, ``D_B`` judges A).

    Args:
        cfg: the composed CycleGAN config (networks, loss weights, optimizer settings, batch size).
        data: the dataset of ``{"A", "B"}`` pairs, read in order.
        seed: torch seed for the weights; the networks are built in the config's order
            (``generator``, ``generator_ba``, ``discriminator``, ``discriminator_a``), as ganforge does.
    """

    def __init__(self, cfg: DictConfig, data, seed: int = 0):
        torch.manual_seed(seed)
        model = cfg.model
        self.netG_A, self.netG_B = instantiate(model.generator), instantiate(model.generator_ba)
        self.netD_A, self.netD_B = instantiate(model.discriminator), instantiate(model.discriminator_a)
        lr, betas = cfg.optimizer.generator.lr, tuple(cfg.optimizer.generator.betas)
        self.optimizer_G = torch.optim.Adam(
            itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()), lr=lr, betas=betas
        )
        self.optimizer_D = torch.optim.Adam(
            itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()), lr=lr, betas=betas
        )
        self.fake_A_pool, self.fake_B_pool = HistoryPool(model.pool_size), HistoryPool(model.pool_size)
        self.lambda_A = self.lambda_B = float(cfg.loss.lambda_cycle)
        self.lambda_idt = float(cfg.loss.lambda_identity)
        self.loader = DataLoader(data, batch_size=int(cfg.data.batch_size), drop_last=True)
        self._batches = iter(self.loader)
        self.losses: list[tuple[float, float]] = []  # (loss_G, loss_D_A + loss_D_B) per iteration

    @staticmethod
    def criterion_gan(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        """LSGAN: mean squared error to a target of 1 (real) or 0 (fake)."""
        target = torch.tensor(1.0 if target_is_real else 0.0).expand_as(prediction)
        return F.mse_loss(prediction, target)

    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss_D = (self.criterion_gan(netD(real), True) + self.criterion_gan(netD(fake.detach()), False)) * 0.5
        loss_D.backward()
        return loss_D

    def _next(self) -> dict[str, torch.Tensor]:
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            return next(self._batches)

    def step(self) -> None:
        """One ``optimize_parameters``, data loading included."""
        batch = self._next()
        real_A, real_B = batch["A"], batch["B"]
        fake_B = self.netG_A(real_A)
        rec_A = self.netG_B(fake_B)
        fake_A = self.netG_B(real_B)
        rec_B = self.netG_A(fake_A)
        # G_A and G_B, the discriminators frozen
        set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        idt_A = self.netG_A(real_B)
        loss_idt_A = F.l1_loss(idt_A, real_B) * self.lambda_B * self.lambda_idt
        idt_B = self.netG_B(real_A)
        loss_idt_B = F.l1_loss(idt_B, real_A) * self.lambda_A * self.lambda_idt
        loss_G_A = self.criterion_gan(self.netD_A(fake_B), True)
        loss_G_B = self.criterion_gan(self.netD_B(fake_A), True)
        loss_cycle_A = F.l1_loss(rec_A, real_A) * self.lambda_A
        loss_cycle_B = F.l1_loss(rec_B, real_B) * self.lambda_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        self.optimizer_G.step()
        # D_A and D_B
        set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        loss_D_A = self.backward_D_basic(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
        loss_D_B = self.backward_D_basic(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
        self.optimizer_D.step()
        self.losses.append((loss_G.item(), (loss_D_A + loss_D_B).item()))

    def run(self, n: int) -> float:
        """Seconds for ``n`` iterations."""
        start = time.perf_counter()
        for _ in range(n):
            self.step()
        return time.perf_counter() - start


class FirstLosses(Callback):
    """Keeps ganforge's ``(g_loss, d_loss)`` of every iteration."""

    def __init__(self):
        self.losses: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        logs = pl_module.last_losses
        self.losses.append((float(logs["train/g_loss"]), float(logs["train/d_loss"])))


def measure_pair(
    img_size: int,
    batch_size: int,
    setting: str,
    blocks: int = 9,
    width: int | None = None,
    warmup: int = 1,
    iters: int = 2,
    seed: int = 0,
) -> dict:
    """ganforge with ``setting`` and the official loop in turns; returns their times and first losses."""
    precision, overrides = SETTINGS[setting]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(img_size, blocks, width, batch_size, tmp, tuple(overrides))
        n_batches = warmup + iters
        data = RandomPairs(n_batches * batch_size, int(cfg.data.channels), img_size)
        pl.seed_everything(seed, workers=True)
        official = OfficialStep(cfg, data, seed)
        pl.seed_everything(seed, workers=True)
        module = build_module(cfg, None)
        window, losses = Interleaved({"official": official}, warmup, 1, iters, "cpu"), FirstLosses()
        # no extra iteration: Interleaved counts FLOPs only after its blocks
        trainer = bare_trainer("cpu", precision, n_batches, [losses, window])
        trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=batch_size, drop_last=True))
    ours, theirs = window.times["ganforge"], window.times["official"]
    first = [
        abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses.losses[0], official.losses[0], strict=True)
    ]
    return {
        "ganforge_s": statistics.median(ours),
        "official_s": statistics.median(theirs),
        "turn_speedups": [o / g for g, o in zip(ours, theirs, strict=True)],
        "first_losses": (losses.losses[0], official.losses[0]),
        "first_loss_rel_diff": max(first),
    }


def row(img_size: int, batch_size: int, setting: str, r: dict) -> dict[str, str]:
    turns = r["turn_speedups"]
    (g_ours, d_ours), (g_theirs, d_theirs) = r["first_losses"]
    return {
        "run": f"{img_size} px, batch {batch_size}",
        "ganforge setting": setting,
        "ganforge s/iter": f"{r['ganforge_s']:.3f}",
        "official s/iter": f"{r['official_s']:.3f}",
        "speed-up per turn: median (min-max)": f"{statistics.median(turns):.3f} ({min(turns):.3f}-{max(turns):.3f})",
        "speed-up of medians": f"{r['official_s'] / r['ganforge_s']:.3f}",
        "first losses G / D (ganforge; official)": f"{g_ours:.5f} / {d_ours:.5f}; {g_theirs:.5f} / {d_theirs:.5f}",
        "max rel. diff": f"{r['first_loss_rel_diff']:.1e}",
    }


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    """Command line (see the module docstring); returns one table row per size, batch and setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["default", "recommended"])
    parser.add_argument("--blocks", type=int, default=9, help="residual blocks of each translator (paper: 9)")
    parser.add_argument("--width", type=int, default=None, help="G and D width (default: the config's, 64)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations of each loop first")
    parser.add_argument(
        "--iters", type=int, default=2, help="timed turns (one iteration of each loop per turn)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="64 px, batch 1, 2 turns")
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.sizes, args.batch_sizes, args.iters = [64], [1], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning_fabric"):  # keep the table readable
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    rows = []
    start = time.perf_counter()
    for img_size, batch_size, setting in itertools.product(args.sizes, args.batch_sizes, args.settings):
        r = measure_pair(img_size, batch_size, setting, args.blocks, args.width, args.warmup, args.iters)
        rows.append(row(img_size, batch_size, setting, r))
    info = cpu_info()
    print(
        f"CycleGAN, {args.blocks} blocks, width {args.width or 64}: ganforge vs the official step on "
        f"{info['model']}, {info['cores']} cores (bf16 units: {info['bf16_units']}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.warmup} warm-up + {args.iters} turns per row; recommended = bf16; "
        f"{time.perf_counter() - start:.0f} s"
    )
    return rows


if __name__ == "__main__":
    print_table("CycleGAN iteration: ganforge vs the official step", main(sys.argv[1:]))

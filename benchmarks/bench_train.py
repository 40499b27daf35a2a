"""Training throughput of ganforge's default run against a plain PyTorch loop.

Both train the same DCGAN (Radford et al. 2016) of the default experiment
(``experiment=dcgan_mnist5k``: widths 32, 28 px, batch 64, Adam 2e-4 / (0.5, 0.999)) on the
same in-memory MNIST tensors with the same batch size:

* **ganforge**: the real ``GANModule`` in a Lightning ``Trainer`` built from the composed
  config: its memory format (channels-last), its loggers (CSV + TensorBoard every 10
  iterations), the per-step divergence check and EMA update, loss diagnostics. The progress
  bar is off; the epoch-end checkpoint and sample grid run but fall outside the timed window,
  as does validation (off).
* **plain**: the training loop of PyTorch's own DCGAN example (``examples/dcgan/main.py``):
  eager, NCHW, BCE on logits, ``fake.detach()`` for D and the same ``fake`` for G, ``.item()``
  of the three diagnostics per step.
  The default experiment sets ``model.reuse_fake: true``, so ganforge runs the same algorithm.
* **plain_same_work**: the same loop, but G's step draws a fresh noise batch and runs G forward
  again, as ganforge does with ``model.reuse_fake=false`` (the GAN scheme's default outside the
  default experiment): the reference for that setting's equal work per iteration.

The loops take turns inside one process: during each repetition's ganforge run, every 5
ganforge iterations are followed by 5 iterations of each plain loop (in alternating order), so
a change in the shared machine's speed, which moves a loop's rate by up to ~25 % within
seconds here, reaches all of them alike. Images/s are medians over the repetitions with the
range. Three ratios ganforge/plain: of the median rates, the median of the per-repetition
ratios, and the median of the per-block ratios (each over a fraction of a second).
FLOPs of one training iteration come from ``torch.utils.flop_counter.FlopCounterMode``.

On a GPU (``--device cuda``) both loops run there, timed between ``torch.cuda.synchronize()``
calls, with cuDNN's autotuner on for both (``trainer.benchmark=true``; PyTorch's example sets
``cudnn.benchmark = True`` too); ``--precision bf16-mixed`` runs ganforge in bf16 and the plain
loops' forward passes under bf16 autocast, and ``--compile`` compiles G and D of every loop. The
peaks are then the GPU's: an 8192^2 matmul in the run's math (TF32 for ``32-true``, whose cuDNN
convolutions use TF32 by default; bf16 for ``bf16-mixed``) and the datasheet's dense peak for it.

Usage:
    python benchmarks/bench_train.py            # 7 repetitions of 55 timed iterations per loop
    python benchmarks/bench_train.py --quick    # 1 repetition of 20
    python benchmarks/bench_train.py --threads 1   # one core: steadier on a busy machine
    python benchmarks/bench_train.py --override trainer.precision=bf16-mixed   # ganforge in bf16
    python benchmarks/bench_train.py --device cuda --precision bf16-mixed --compile   # both loops, GPU
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from pytorch_lightning import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import (  # noqa: E402
    PeakMemory,
    cpu_info,
    gpu_info,
    measured_matmul_peak,
    run_math,
    theoretical_fp32_peak,
    theoretical_gpu_peak,
)

from ganforge.config import compose_config  # noqa: E402
from ganforge.train import build_loggers, build_module  # noqa: E402
from ganforge.utils.checkpoint_io import AtomicCheckpointIO  # noqa: E402

NAMES = ("ganforge", "plain", "plain_same_work")
PRECISIONS = ("32-true", "bf16-mixed")  # what --precision gives both loops (the plain loop by autocast)


def resolve_device(device: str = "auto") -> str:
    """``cpu`` or ``cuda`` for ``auto`` (a GPU when present), ``cpu`` or ``cuda``; refuses a missing GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but torch sees no CUDA device")
    return device


def run_overrides(
    device: str = "auto", precision: str | None = None, compile: str | None = None
) -> list[str]:
    """ganforge's config overrides for ``--device``, ``--precision`` and ``--compile`` (none by default)."""
    out = []
    if device != "auto":
        out.append(f"trainer.accelerator={'gpu' if resolve_device(device) == 'cuda' else 'cpu'}")
        if resolve_device(device) == "cuda":
            out.append("trainer.benchmark=true")
    if precision:
        out.append(f"trainer.precision={precision}")
    if compile:
        out.append(f"model.compile={'true' if compile == 'inductor' else compile}")
    return out


def default_config(run_dir: str, overrides: list[str] | None = None) -> DictConfig:
    """The default experiment's composed config, writing under ``run_dir``."""
    cfg = compose_config(["experiment=dcgan_mnist5k", *(overrides or [])])
    with open_dict(cfg):
        cfg.paths.output_dir = run_dir
        cfg.paths.outputs_root = run_dir
    return cfg


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PlainLoop:
    """PyTorch's DCGAN example loop on the default config's networks and data, one step at a time.

    Args:
        cfg: the composed config (networks, batch size, optimizer settings).
        images: the training images, one tensor.
        seed: torch seed for the networks' initialisation.
        same_work: draw a fresh noise batch and run G again for G's step (the work of
            ganforge's ``model.reuse_fake=false``) instead of reusing D's fake batch.
        device: ``cpu`` or ``cuda``; ``None`` = a GPU when present.
        precision: ``32-true``, or ``bf16-mixed`` for forward passes and losses under bf16 autocast.
        compile: a ``torch.compile`` backend for G and D (compiled in place, as ganforge does), or ``None``.
    """

    def __init__(
        self,
        cfg: DictConfig,
        images: torch.Tensor,
        seed: int = 0,
        same_work: bool = False,
        device: str | None = None,
        precision: str = "32-true",
        compile: str | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        torch.manual_seed(seed)
        self.device = device or resolve_device()
        self.net_g = instantiate(cfg.model.generator).to(self.device)
        self.net_d = instantiate(cfg.model.discriminator).to(self.device)
        if compile:
            self.net_g.compile(backend=compile)
            self.net_d.compile(backend=compile)
        self.bf16 = precision == "bf16-mixed"
        self.opt_g = torch.optim.Adam(
            self.net_g.parameters(), lr=cfg.optimizer.generator.lr, betas=cfg.optimizer.generator.betas
        )
        self.opt_d = torch.optim.Adam(
            self.net_d.parameters(),
            lr=cfg.optimizer.discriminator.lr,
            betas=cfg.optimizer.discriminator.betas,
        )
        self.criterion = nn.BCEWithLogitsLoss()  # the example's Sigmoid + BCELoss, in its stable form
        self.loader = DataLoader(
            TensorDataset(images), batch_size=cfg.data.batch_size, shuffle=True, drop_last=True
        )
        self.latent_dim, self.same_work = cfg.model.latent_dim, same_work
        self._batches = iter(self.loader)

    def _next_batch(self) -> torch.Tensor:
        try:
            (real,) = next(self._batches)
        except StopIteration:  # a new epoch
            self._batches = iter(self.loader)
            (real,) = next(self._batches)
        return real

    def _autocast(self):
        """bf16 autocast for forward passes and losses (backward runs outside, as PyTorch advises)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=torch.bfloat16)

    def step(self) -> None:
        """One iteration of the example's loop body, data loading included."""
        device, criterion, net_d, net_g = self.device, self.criterion, self.net_d, self.net_g
        real = self._next_batch().to(device)
        b = real.shape[0]
        ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
        net_d.zero_grad()
        with self._autocast():
            output = net_d(real)
            err_d_real = criterion(output, ones)
        err_d_real.backward()
        output.mean().item()
        with self._autocast():
            fake = net_g(torch.randn(b, self.latent_dim, device=device))
            output = net_d(fake.detach())
            err_d_fake = criterion(output, zeros)
        err_d_fake.backward()
        output.mean().item()
        self.opt_d.step()
        net_g.zero_grad()
        with self._autocast():
            if self.same_work:  # a fresh noise batch for G's step, as ganforge draws
                fake = net_g(torch.randn(b, self.latent_dim, device=device))
            output = net_d(fake)
            err_g = criterion(output, ones)
        err_g.backward()
        output.mean().item()
        self.opt_g.step()

    def run(self, n: int) -> float:
        """Seconds for ``n`` iterations."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(n):
            self.step()
        _sync(self.device)
        return time.perf_counter() - start

    def flops(self) -> float:
        """FLOPs of one iteration."""
        with FlopCounterMode(display=False) as counter:
            self.step()
        return float(counter.get_total_flops())


class Interleaved(Callback):
    """Inside a ganforge run, alternates blocks of ganforge iterations with blocks of each plain loop.

    After ``warmup`` ganforge iterations (and as many of each plain loop), every ``block``
    ganforge iterations are timed, then ``block`` iterations of each plain loop, in alternating
    order, ``blocks`` times: a block lasts a fraction of a second, so a change in the shared
    machine's speed reaches every loop alike. ganforge's time runs from the end of the previous
    plain block to the end of its own block's last batch, so it includes Lightning's loop, data
    fetching and every callback of each of its iterations. The iteration after the last block
    is counted for FLOPs.
    """

    def __init__(self, loops: dict[str, PlainLoop], warmup: int, block: int, blocks: int, device: str):
        self.loops, self.warmup, self.block, self.blocks, self.device = loops, warmup, block, blocks, device
        self.times: dict[str, list[float]] = {"ganforge": [], **{name: [] for name in loops}}
        self.memory: dict[str, list[PeakMemory]] = {name: [] for name in self.times}
        self.flops = float("nan")
        self._counter: FlopCounterMode | None = None
        self._start = 0.0

    def peak_mb(self, name: str) -> tuple[float, float]:
        """``(peak, added)`` memory in MB over the blocks of loop ``name``."""
        blocks = self.memory[name]
        return max(m.peak_mb for m in blocks), max(m.added_mb for m in blocks)

    def _begin_ganforge_block(self) -> None:
        self.memory["ganforge"].append(PeakMemory(self.device).__enter__())
        _sync(self.device)
        self._start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup + self.block * self.blocks:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops, self._counter = float(self._counter.get_total_flops()), None
            return
        k = batch_idx - self.warmup + 1  # ganforge iterations timed so far
        if k == 0:  # end of the warmup: warm the plain loops too, then start ganforge's clock
            for loop in self.loops.values():
                loop.run(self.warmup)
            self._begin_ganforge_block()
        elif k % self.block == 0 and 0 < k <= self.block * self.blocks:
            _sync(self.device)
            self.times["ganforge"].append(time.perf_counter() - self._start)
            self.memory["ganforge"][-1].__exit__()
            names = list(self.loops) if (k // self.block) % 2 else list(self.loops)[::-1]
            for name in names:
                with PeakMemory(self.device) as memory:
                    self.times[name].append(self.loops[name].run(self.block))
                self.memory[name].append(memory)
            if k < self.block * self.blocks:
                self._begin_ganforge_block()


def run_interleaved(
    cfg: DictConfig,
    images: torch.Tensor,
    warmup: int,
    block: int,
    blocks: int,
    seed: int = 0,
    device: str = "auto",
    precision: str | None = None,
    compile: str | None = None,
) -> tuple[Interleaved, dict[str, float]]:
    """One repetition: a ganforge run of the default config with the plain loops interleaved.

    ``device``, ``precision`` and ``compile`` set the plain loops (the config sets ganforge's).
    Returns the callback (block times, peaks, ganforge's FLOPs) and each plain loop's FLOPs.
    """
    pl.seed_everything(seed, workers=True)
    device = resolve_device(device)
    options = {"device": device, "precision": precision or "32-true", "compile": compile}
    loops = {
        "plain": PlainLoop(cfg, images, seed, **options),
        "plain_same_work": PlainLoop(cfg, images, seed, same_work=True, **options),
    }
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    callbacks = [instantiate(node) for name, node in cfg.callbacks.items() if node and name != "progress_bar"]
    window = Interleaved(loops, warmup, block, blocks, device)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, window],
        logger=build_loggers(cfg, Path(cfg.paths.output_dir)),
        plugins=[AtomicCheckpointIO()],
        max_epochs=1,
        limit_train_batches=warmup + block * blocks + 1,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return window, {name: loop.flops() for name, loop in loops.items()}


def train_images(cfg: DictConfig) -> torch.Tensor:
    """The default run's training images as one tensor (what both loops train on)."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return torch.stack([datamodule.train_set[i][0] for i in range(len(datamodule.train_set))])


def measure(
    quick: bool = False,
    repeats: int | None = None,
    iters: int | None = None,
    warmup: int = 10,
    overrides: list[str] | None = None,
    matmul_n: int = 2048,
    block: int = 5,
    device: str = "auto",
    precision: str | None = None,
    compile: str | None = None,
) -> dict:
    """Run the comparison; returns every measured figure (medians, ranges, FLOPs, peaks).

    Args:
        quick: 1 repetition of 20 iterations instead of 7 of 55.
        repeats: repetitions (fresh runs of every loop; overrides ``quick``).
        iters: timed iterations per loop and repetition, rounded down to whole blocks
            (overrides ``quick``).
        warmup: untimed iterations first; 10 passes the first logging step and its one-off imports.
        overrides: config overrides on top of the default experiment (tests shrink the model).
        matmul_n: side of the square matmul that measures the machine's peak (at least 8192 on a GPU).
        block: iterations per block; the loops take turns block by block.
        device: ``auto`` (a GPU when present, the config unchanged), ``cpu`` or ``cuda``, for both loops.
        precision: ``32-true`` or ``bf16-mixed`` for both loops; ``None`` = the config's for
            ganforge and fp32 for the plain loops.
        compile: a ``torch.compile`` backend (``inductor``, ``aot_eager``...) for G and D of
            every loop; ``None`` = eager.
    """
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 (the turns start after it); got {warmup}")
    repeats = repeats or (1 if quick else 7)
    iters = iters or (20 if quick else 55)
    block = max(1, min(block, iters))
    blocks = iters // block
    overrides = [*run_overrides(device, precision, compile), *(overrides or [])]
    options = {"device": device, "precision": precision, "compile": compile}
    device = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = default_config(tmp, overrides)
        batch = int(cfg.data.batch_size)
        images = train_images(cfg)
        if warmup + block * blocks + 1 > len(images) // batch:
            raise ValueError(f"warmup + iters + 1 = {warmup + block * blocks + 1} exceeds one epoch")
        rates = {name: [] for name in NAMES}
        block_ratios: list[float] = []
        last: dict = {}
        for rep in range(repeats):
            window, plain_flops = run_interleaved(
                default_config(f"{tmp}/run{rep}", overrides), images, warmup, block, blocks, rep, **options
            )
            for name in NAMES:
                rates[name].append(block * blocks * batch / sum(window.times[name]))
                peak, added = window.peak_mb(name)
                flops = window.flops if name == "ganforge" else plain_flops[name]
                last[name] = {"flops": flops, "peak_mb": peak, "added_mb": added}
            block_ratios += [
                p / g for g, p in zip(window.times["ganforge"], window.times["plain"], strict=True)
            ]
    info = cpu_info()
    cores = info["cores"]
    machine = f"{info['model']}, {cores} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    math = run_math(device, str(cfg.trainer.precision))
    if device == "cuda":
        gpu = gpu_info()
        machine = (
            f"{gpu['name']} ({gpu['memory_gib']:.0f} GiB, sm {gpu['capability']}), CUDA {gpu['cuda']}, "
            f"cuDNN {gpu['cudnn']}, torch {torch.__version__}; host {info['model']}, {cores} cores"
        )
        theory, formula = theoretical_gpu_peak(math)
        matmul_n = max(matmul_n, 8192)
    else:
        theory, formula = theoretical_fp32_peak({**info, "cores": min(cores, torch.get_num_threads())})
    matmul = measured_matmul_peak(matmul_n, device=device, math=math)
    med = {k: statistics.median(v) for k, v in rates.items()}
    # Each repetition runs the loops side by side, so its ratio cancels the machine's slow load
    # changes that move the per-loop medians between repetitions; a block's ratio, a fraction of
    # a second apart, cancels the fast ones too.
    paired = [g / p for g, p in zip(rates["ganforge"], rates["plain"], strict=True)]
    out = {
        "machine": machine,
        "device": device,
        "precision": f"{cfg.trainer.precision} (plain loops: {precision or '32-true'})",
        "compile": compile or "off",
        "math": math,
        "matmul_n": matmul_n,
        "batch_size": batch,
        "timed_iters": block * blocks,
        "block": block,
        "repeats": repeats,
        "ratio": med["ganforge"] / med["plain"],
        "paired_ratio": statistics.median(paired),
        "paired_ratio_range": (min(paired), max(paired)),
        "block_ratio": statistics.median(block_ratios),
        "block_ratio_share": sum(r >= 1.10 for r in block_ratios) / len(block_ratios),
        "ratio_same_work": med["ganforge"] / med["plain_same_work"],
        "matmul_peak_gflops": matmul / 1e9,
        "theoretical_peak_gflops": theory / 1e9,
        "theoretical_formula": formula,
    }
    for name in rates:
        flops_per_iter = last[name]["flops"]
        achieved = flops_per_iter * med[name] / batch
        out[name] = {
            "images_per_s": med[name],
            "images_per_s_range": (min(rates[name]), max(rates[name])),
            "gflop_per_iter": flops_per_iter / 1e9,
            "achieved_gflops": achieved / 1e9,
            "pct_matmul_peak": 100 * achieved / matmul,
            "pct_theoretical_peak": 100 * achieved / theory,
            "peak_rss_mb": last[name]["peak_mb"],
            "added_rss_mb": last[name]["added_mb"],
        }
    return out


def table(result: dict) -> list[dict[str, str]]:
    """Rows for printing: one per measured quantity, ganforge and plain side by side."""

    def both(key: str, fmt: str) -> dict[str, str]:
        return {name: format(result[name][key], fmt) for name in NAMES}

    def note(measure: str, value: str, remark: str = "") -> dict[str, str]:
        return {"measure": measure, "ganforge": value, "plain": remark, "plain_same_work": ""}

    gpu = result.get("device") == "cuda"
    unit, scale = ("TFLOP/s", 1e3) if gpu else ("GFLOP/s", 1.0)  # the figures are kept in GFLOP/s
    math = result.get("math", "fp32")
    memory = "CUDA memory allocated" if gpu else "RSS"
    rows = [
        {"measure": "images/s (median)", **both("images_per_s", ".1f")},
        {
            "measure": "images/s (min-max)",
            **{
                n: f"{r['images_per_s_range'][0]:.1f}-{r['images_per_s_range'][1]:.1f}"
                for n, r in ((name, result[name]) for name in NAMES)
            },
        },
        {"measure": "GFLOP per iteration", **both("gflop_per_iter", ".3f")},
        {
            "measure": f"achieved {unit}",
            **{name: f"{result[name]['achieved_gflops'] / scale:.1f}" for name in NAMES},
        },
        {"measure": "% of matmul peak", **both("pct_matmul_peak", ".1f")},
        {"measure": f"% of theoretical {math.upper()} peak", **both("pct_theoretical_peak", ".1f")},
        {"measure": f"peak {memory} of the process while timed (MB)", **both("peak_rss_mb", ".0f")},
        {"measure": f"{memory} added by the timed steps (MB)", **both("added_rss_mb", ".0f")},
    ]
    rows += [
        note("ratio ganforge/plain (medians)", f"{result['ratio']:.3f}"),
        note(
            "ratio ganforge/plain per repetition",
            f"{result['paired_ratio']:.3f}",
            "median; min-max {:.3f}-{:.3f}".format(*result["paired_ratio_range"]),
        ),
        note(
            "ratio ganforge/plain per block",
            f"{result['block_ratio']:.3f}",
            f"median; {100 * result['block_ratio_share']:.0f} % of blocks >= 1.10",
        ),
        note("ratio ganforge/plain_same_work", f"{result['ratio_same_work']:.3f}"),
        note(
            f"matmul peak {result.get('matmul_n', 2048)}^2 {math} ({unit})",
            f"{result['matmul_peak_gflops'] / scale:.1f}",
        ),
        note(
            f"theoretical {math.upper()} peak ({unit})",
            f"{result['theoretical_peak_gflops'] / scale:.1f}",
            result["theoretical_formula"],
        ),
    ]
    return rows


def print_table(title: str, rows: list[dict[str, str]]) -> None:
    """A plain-text table with one column per key of the rows."""
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print(f"\n## {title}")
    print(" | ".join(k.ljust(widths[k]) for k in keys))
    print("-+-".join("-" * widths[k] for k in keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "")).ljust(widths[k]) for k in keys))


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    """Command line: ``[--quick] [--repeats N] [--iters N] [--device D] [--precision P] [--compile [B]]``.

    Returns the table rows.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition of 20 iterations")
    parser.add_argument("--repeats", type=int, default=None, help="fresh runs of every loop (default 7)")
    parser.add_argument(
        "--iters", type=int, default=None, help="timed iterations per loop and run (default 55)"
    )
    parser.add_argument("--block", type=int, default=5, help="iterations per turn of each loop (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="config override (repeatable): networks and data for both loops, the rest for ganforge "
        "alone, e.g. trainer.precision=bf16-mixed (the plain loop stays fp32)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="both loops (default: a GPU if any)"
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=None, help="both loops (default: the config's, plain fp32)"
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        default=None,
        metavar="BACKEND",
        help="torch.compile G and D of every loop (default backend: inductor)",
    )
    args, _ = parser.parse_known_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning_fabric"):  # keep the table readable
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    result = measure(
        args.quick,
        args.repeats,
        args.iters,
        overrides=args.override,
        block=args.block,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
    )
    print(
        f"machine: {result['machine']}; batch {result['batch_size']}, "
        f"{result['timed_iters']} timed iterations x {result['repeats']} repetitions, "
        f"in turns of {result['block']}; device {result['device']}, precision {result['precision']}, "
        f"compile {result['compile']}"
    )
    return table(result)


if __name__ == "__main__":
    print_table("training throughput: ganforge vs plain PyTorch", main(sys.argv[1:]))

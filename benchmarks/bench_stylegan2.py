"""StyleGAN2's resampling filter, computed two ways: seconds per training iteration, side by side.

The Stacked MNIST StyleGAN2 with R3GAN's loss (``experiment=stylegan2_r3gan_stacked_mnist_arch``,
R1 and R2 on every D step, so a double backward through D's down-sampling filters every
iteration) trains in a Lightning ``Trainer`` with ``fir_filter`` forced to each implementation in
turn, in one process:

* **depthwise**: a grouped convolution, one group per channel (what the CPU uses);
* **separable**: weighted sums of shifted slices along the height, then the width (what CUDA uses:
  a grouped convolution's double backward runs one convolution per channel).

Usage (from the repository root):
    python benchmarks/bench_stylegan2.py                   # CPU, the README's narrow network
    python benchmarks/bench_stylegan2.py --device cuda --wide
    python benchmarks/bench_stylegan2.py --quick           # 2 timed iterations per turn

Prints seconds per iteration of each (median over turns) and separable/depthwise, above 1 where the
shifted sums are slower. Results: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bench_translation import StepTimer, bare_trainer  # noqa: E402

import ganforge.networks.stylegan2 as stylegan2  # noqa: E402
from ganforge.config import compose_config  # noqa: E402
from ganforge.train import build_module  # noqa: E402

BY_DEVICE = stylegan2.fir_filter  # what training uses: the separable form on CUDA, else the depthwise one
IMPLEMENTATIONS = {"depthwise": stylegan2.fir_filter_depthwise, "separable": stylegan2.fir_filter_separable}
WIDE = ["model.generator.channel_base=2048", "model.generator.channel_max=128", "data.batch_size=64"]


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--wide", action="store_true", help="channels x4 and batch 64 (" + " ".join(WIDE) + ")"
    )
    parser.add_argument("--iters", type=int, default=8, help="timed iterations per turn")
    parser.add_argument("--turns", type=int, default=3, help="turns of each implementation")
    parser.add_argument("--quick", action="store_true", help="2 iterations, 2 turns")
    args, _ = parser.parse_known_args(argv)
    iters, turns = (2, 2) if args.quick else (args.iters, args.turns)
    cfg = compose_config(["experiment=stylegan2_r3gan_stacked_mnist_arch", *(WIDE if args.wide else [])])
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix="bench_stylegan2_")
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)

    def fit(n: int) -> float:
        """Seconds per iteration over ``n`` timed iterations, after one untimed (``n + 1`` are run)."""
        timer = StepTimer(warmup=1, iters=n, device=args.device)
        trainer = bare_trainer(args.device, str(cfg.trainer.precision), n + 1, [timer])
        trainer.fit(module, datamodule=datamodule)
        return timer.seconds / n

    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    try:
        for fn in IMPLEMENTATIONS.values():  # warm-up: first calls, cuDNN's choices, allocator
            stylegan2.fir_filter = fn
            fit(2)
        for _ in range(turns):
            for name, fn in IMPLEMENTATIONS.items():
                stylegan2.fir_filter = fn
                times[name].append(fit(iters))
    finally:
        stylegan2.fir_filter = BY_DEVICE
    median = {name: statistics.median(t) for name, t in times.items()}
    network = "wide (" + " ".join(WIDE) + ")" if args.wide else "narrow (the README's)"
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    rows = [
        {"measure": "network, device", "value": f"{network}, {device}, torch {torch.__version__}"},
        {
            "measure": "timing",
            "value": f"{turns} turns x {iters} iterations each, after 3 warm-up iterations of each; the first of every fit untimed",
        },
    ]
    for name in IMPLEMENTATIONS:
        spread = f"{min(times[name]):.4f}-{max(times[name]):.4f}"
        rows.append(
            {"measure": f"{name}: s/iteration (median; min-max)", "value": f"{median[name]:.4f}; {spread}"}
        )
    ratio = median["separable"] / median["depthwise"]
    rows.append({"measure": "separable / depthwise (s/iteration)", "value": f"{ratio:.3f}"})
    return rows


if __name__ == "__main__":
    from bench_train import print_table

    print_table("StyleGAN2 iteration: resampling filter as a depthwise convolution vs separable sums", main())

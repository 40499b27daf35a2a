"""Metric evaluation throughput and the time saved by cached real statistics.

Run alone (``python benchmarks/bench_metrics.py``) or through ``make bench``. Prints one table:
images/s of feature extraction and of a whole evaluation (FID, KID, IS, precision/recall) with the
domain extractor, and the same evaluation cold (real statistics computed) and warm (read from the
cache) side by side. The Inception extractor is measured only when its weights file is present.

Usage:
    python benchmarks/bench_metrics.py                           # the CPU, 1,000 generated images
    python benchmarks/bench_metrics.py --device cuda             # extractor and metrics on the GPU
    python benchmarks/bench_metrics.py --device cpu --n-fake 200 # a short run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganforge.data.embedded import MNIST5kDataModule  # noqa: E402
from ganforge.metrics.evaluator import MetricEvaluator  # noqa: E402
from ganforge.metrics.features import InceptionWeightsMissing, inception_weights_file  # noqa: E402

N_FAKE = 1000  # the default run's generated images per evaluation


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # GPU work queued by fn is part of its time


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    _sync()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    _sync()
    return time.perf_counter() - start, out


def fake_batches(images: torch.Tensor, batch_size: int):
    yield from images.split(batch_size)


def bench_domain(rows: list[tuple[str, str, str]], device: str = "cpu", n_fake: int = N_FAKE) -> None:
    data = MNIST5kDataModule(img_size=28, channels=1, batch_size=250)
    data.setup("fit")
    fakes = torch.rand(n_fake, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with tempfile.TemporaryDirectory() as cache:
        options = {"n_fake": n_fake, "real_split": "train", "cache_dir": cache}
        cold_ev = MetricEvaluator(**options).to(device)
        cold_ev.embed(fakes[:2])  # one-off start-up (CUDA context, kernels) outside the timings
        embed_s, _ = timed(cold_ev.embed, fakes)
        rows.append(("domain: feature extraction", f"{n_fake} images", f"{n_fake / embed_s:,.0f} images/s"))

        def full(ev: MetricEvaluator) -> tuple[float, float]:
            real_s, real = timed(ev.real_statistics, data.metric_reals("train"), data.dataset_id)
            eval_s, _ = timed(ev.evaluate, fake_batches(fakes, ev.batch_size), real)
            return real_s, eval_s

        cold_real, cold_eval = full(cold_ev)
        warm_real, warm_eval = full(MetricEvaluator(**options).to(device))
        real = cold_ev.real_statistics(data.metric_reals("train"), data.dataset_id)
        features, logits = cold_ev.embed(fakes)
        parts = []
        for name in ("fid", "kid", "is", "pr"):
            cold_ev.names = [name]
            parts.append(f"{name} {timed(cold_ev.score, features, logits, real)[0]:.2f} s")
    n_real = len(data.train_set)
    rows.append(
        ("domain: evaluation (fid, kid, is, pr)", f"{n_fake} fake", f"{n_fake / cold_eval:,.0f} images/s")
    )
    rows.append(("metric compute alone (features given)", f"{n_fake} fake, {n_real} real", ", ".join(parts)))
    rows.append(
        (
            f"real statistics, {n_real} train images",
            f"cold {cold_real:.2f} s",
            f"warm (cached) {warm_real:.3f} s",
        )
    )
    rows.append(
        (
            "whole evaluation, cold vs warm",
            f"cold {cold_real + cold_eval:.2f} s",
            f"warm {warm_real + warm_eval:.2f} s (saves {cold_real - warm_real:.2f} s)",
        )
    )


def bench_inception(rows: list[tuple[str, str, str]], device: str = "cpu") -> None:
    try:
        inception_weights_file()
    except InceptionWeightsMissing:
        rows.append(("inception", "skipped", "weights file not in the torch hub cache"))
        return
    ev = MetricEvaluator(extractor="inception", n_fake=50, cache_dir=None).to(device)
    images = torch.rand(50, 3, 32, 32) * 2 - 1
    seconds, _ = timed(ev.embed, images)
    rows.append(("inception: feature extraction", "50 images", f"{50 / seconds:,.1f} images/s"))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``[--device cpu|cuda] [--n-fake N]``; prints the table (options it does not know
    are ignored, as ``make bench`` hands every benchmark the same ones)."""
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--n-fake", type=int, default=N_FAKE, help="generated images per evaluation")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(0)
    rows: list[tuple[str, str, str]] = []
    bench_domain(rows, device, args.n_fake)
    bench_inception(rows, device)
    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    table = Table("metrics benchmark", "work", "result", title=f"ganforge metrics ({where})")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()

"""Metric evaluation throughput and the time saved by cached real statistics.

Run alone (``python benchmarks/bench_metrics.py``) or through ``make bench``. Prints one table:
images/s of feature extraction and of a whole evaluation (FID, KID, IS, precision/recall) with the
domain extractor, and the same evaluation cold (real statistics computed) and warm (read from the
cache) side by side. The Inception extractor is measured only when its weights file is present.
"""

from __future__ import annotations

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


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def fake_batches(images: torch.Tensor, batch_size: int):
    yield from images.split(batch_size)


def bench_domain(rows: list[tuple[str, str, str]]) -> None:
    data = MNIST5kDataModule(img_size=28, channels=1, batch_size=250)
    data.setup("fit")
    fakes = torch.rand(N_FAKE, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with tempfile.TemporaryDirectory() as cache:
        options = {"n_fake": N_FAKE, "real_split": "train", "cache_dir": cache}
        cold_ev = MetricEvaluator(**options)
        embed_s, _ = timed(cold_ev.embed, fakes)
        rows.append(("domain: feature extraction", f"{N_FAKE} images", f"{N_FAKE / embed_s:,.0f} images/s"))

        def full(ev: MetricEvaluator) -> tuple[float, float]:
            real_s, real = timed(ev.real_statistics, data.metric_reals("train"), data.dataset_id)
            eval_s, _ = timed(ev.evaluate, fake_batches(fakes, ev.batch_size), real)
            return real_s, eval_s

        cold_real, cold_eval = full(cold_ev)
        warm_real, warm_eval = full(MetricEvaluator(**options))
        real = cold_ev.real_statistics(data.metric_reals("train"), data.dataset_id)
        features, logits = cold_ev.embed(fakes)
        parts = []
        for name in ("fid", "kid", "is", "pr"):
            cold_ev.names = [name]
            parts.append(f"{name} {timed(cold_ev.score, features, logits, real)[0]:.2f} s")
    n_real = len(data.train_set)
    rows.append(
        ("domain: evaluation (fid, kid, is, pr)", f"{N_FAKE} fake", f"{N_FAKE / cold_eval:,.0f} images/s")
    )
    rows.append(("metric compute alone (features given)", f"{N_FAKE} fake, {n_real} real", ", ".join(parts)))
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


def bench_inception(rows: list[tuple[str, str, str]]) -> None:
    try:
        inception_weights_file()
    except InceptionWeightsMissing:
        rows.append(("inception", "skipped", "weights file not in the torch hub cache"))
        return
    ev = MetricEvaluator(extractor="inception", n_fake=50, cache_dir=None)
    images = torch.rand(50, 3, 32, 32) * 2 - 1
    seconds, _ = timed(ev.embed, images)
    rows.append(("inception: feature extraction", "50 images", f"{50 / seconds:,.1f} images/s"))


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    torch.manual_seed(0)
    rows: list[tuple[str, str, str]] = []
    bench_domain(rows)
    bench_inception(rows)
    table = Table(
        "metrics benchmark", "work", "result", title=f"ganforge metrics ({torch.get_num_threads()} threads)"
    )
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()

"""The benchmark scripts run and report sane figures (their numbers are not tested: see RESULTS.md)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_train():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("bench_train")
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_bench_train_reports_every_figure(bench_train):
    tiny = ["data=digits", "data.img_size=16", "data.batch_size=16", "model.generator.width=8"]
    tiny.append("model.discriminator.width=8")
    result = bench_train.measure(repeats=1, iters=4, warmup=1, overrides=tiny, matmul_n=256, block=2)
    assert result["timed_iters"] == 4 and result["block"] == 2  # two turns of each loop
    assert result["block_ratio"] > 0 and 0 <= result["block_ratio_share"] <= 1
    for name in bench_train.NAMES:
        r = result[name]
        assert r["images_per_s"] > 0 and r["gflop_per_iter"] > 0 and r["peak_rss_mb"] > 0
        assert 0 < r["pct_matmul_peak"] and 0 < r["pct_theoretical_peak"]
    flops = {name: result[name]["gflop_per_iter"] for name in bench_train.NAMES}
    # Same networks and batch, and the default experiment reuses D's fake for G as the example
    # does; ganforge freezes D during G's step, so it computes no D weight gradients there.
    assert flops["ganforge"] < flops["plain"] < flops["plain_same_work"] < 2 * flops["plain"]
    assert result["ratio"] == pytest.approx(
        result["ganforge"]["images_per_s"] / result["plain"]["images_per_s"]
    )
    lo, hi = result["paired_ratio_range"]
    assert (
        lo == hi == pytest.approx(result["paired_ratio"]) == pytest.approx(result["ratio"])
    )  # one repetition
    rows = bench_train.table(result)
    assert {"measure", *bench_train.NAMES} == set(rows[0]) == set(rows[-1])


def test_run_all_discovers_every_benchmark():
    sys.path.insert(0, str(BENCH))
    try:
        run_all = importlib.import_module("run_all")
    finally:
        sys.path.remove(str(BENCH))
    found = [p.name for p in run_all.discover()]
    assert "bench_train.py" in found and all(n.startswith("bench_") for n in found)

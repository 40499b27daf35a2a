"""The benchmark scripts run and report sane figures (their numbers are not tested: see RESULTS.md)."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


TINY = ["data=digits", "data.img_size=16", "data.batch_size=16", "model.generator.width=8"]
TINY.append("model.discriminator.width=8")


def bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def bench_train():
    return bench_module("bench_train")


@pytest.fixture
def outside_hydra(monkeypatch):
    """As the benchmark runs from its command line: no Hydra job config, whatever an earlier test set."""
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)


@pytest.mark.slow
def test_bench_train_reports_every_figure(bench_train, outside_hydra):
    result = bench_train.measure(repeats=1, iters=4, warmup=1, overrides=TINY, matmul_n=256, block=2)
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


@pytest.mark.slow
def test_bench_stylegan2_times_both_filters_and_restores_the_default(outside_hydra):
    bench = bench_module("bench_stylegan2")
    rows = {r["measure"]: r["value"] for r in bench.main(["--iters", "1", "--turns", "1"])}
    for name in ("depthwise", "separable"):
        assert float(rows[f"{name}: s/iteration (median; min-max)"].split(";")[0]) > 0
    assert float(rows["separable / depthwise (s/iteration)"]) > 0
    from ganforge.networks import stylegan2

    assert stylegan2.fir_filter is bench.BY_DEVICE  # training after the benchmark filters as before


def test_run_all_discovers_every_benchmark():
    found = [p.name for p in bench_module("run_all").discover()]
    expected = {
        "bench_train.py",
        "bench_translation.py",
        "bench_cyclegan_official.py",
        "bench_data.py",
        "bench_stylegan2.py",
    }
    assert expected <= set(found) and all(n.startswith("bench_") for n in found)


def test_device_options_add_nothing_by_default(bench_train):
    """Without --device/--precision/--compile the CPU run composes exactly the config it did before."""
    assert bench_train.run_overrides() == []
    assert bench_train.run_overrides("cpu", "bf16-mixed", "aot_eager") == [
        "trainer.accelerator=cpu",
        "trainer.precision=bf16-mixed",
        "model.compile=aot_eager",
    ]
    assert bench_train.run_overrides(compile="inductor") == ["model.compile=true"]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            bench_train.run_overrides("cuda")


def test_gpu_peaks_are_dense_datasheet_figures():
    machine = bench_module("machine")
    peak, source = machine.theoretical_gpu_peak("bf16", "NVIDIA H200")
    assert peak == pytest.approx(989.4e12) and "dense bf16" in source and "tf32 494.7" in source
    assert math.isnan(machine.theoretical_gpu_peak("bf16", "an unlisted GPU")[0])
    assert machine.run_math("cpu", "bf16-mixed") == "fp32"  # the CPU peak is the fp32 one, as before
    assert machine.run_math("cuda", "bf16-mixed") == "bf16" and machine.run_math("cuda", "16-mixed") == "fp16"


@pytest.mark.slow
def test_plain_loop_runs_under_bf16_autocast_and_compiled(bench_train, tmp_path):
    cfg = bench_train.default_config(str(tmp_path), TINY)
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    eager = bench_train.PlainLoop(cfg, images, device="cpu")
    loop = bench_train.PlainLoop(cfg, images, device="cpu", precision="bf16-mixed", compile="aot_eager")
    seen = set()
    for module in loop.net_d.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    assert loop.run(2) > 0 and torch.bfloat16 in seen
    assert loop.flops() == pytest.approx(eager.flops(), rel=1e-6)  # the same arithmetic, counted alike


@pytest.mark.slow
def test_bench_translation_reports_time_memory_and_flops():
    argv = ["--device", "cpu", "--img-size", "32", "--blocks", "2", "--width", "8", "--warmup", "1"]
    rows = bench_module("bench_translation").main([*argv, "--iters", "2", "--batch-sizes", "1", "2"])
    assert [r["run"] for r in rows] == ["32 px, batch 1, 32-true", "32 px, batch 2, 32-true"]
    for row in rows:
        assert float(row["s/iteration"]) > 0 and float(row["peak RSS (MB)"]) > 0
    flops = [float(r["GFLOP/iteration"]) for r in rows]
    assert flops[1] == pytest.approx(2 * flops[0], rel=0.1)  # twice the images, twice the work


def test_official_cyclegan_step_starts_where_ganforge_does():
    """The plain loop of the reference step and ganforge's module, from the same weights on the
    same batch: the same first losses in fp32; bf16 autocast changes them."""
    bench = bench_module("bench_cyclegan_official")
    tiny = {"blocks": 1, "width": 8, "warmup": 1, "iters": 1}
    fp32 = bench.measure_pair(32, 2, "default", **tiny)
    assert fp32["first_loss_rel_diff"] < 1e-5 and fp32["ganforge_s"] > 0 and fp32["official_s"] > 0
    bf16 = bench.measure_pair(32, 2, "recommended", **tiny)
    assert 1e-5 < bf16["first_loss_rel_diff"] < 0.05
    row = bench.row(32, 2, "default", fp32)
    assert row["run"] == "32 px, batch 2" and float(row["speed-up of medians"]) > 0
    pool = bench.HistoryPool(2)
    images = [torch.full((1, 1, 2, 2), float(i)) for i in range(40)]
    seen = torch.cat([pool.query(x) for x in images]).flatten(1)[:, 0]
    assert seen[:2].tolist() == [0.0, 1.0] and (seen[2:] != torch.arange(2, 40)).any()  # history returned


def test_bench_data_measures_every_loader(tmp_path):
    """Generated JPEGs, a hard-linked subset, uint8 shards; each loader in this process, one batch."""
    bench = bench_module("bench_data")
    big = bench.generate(tmp_path / "jpeg16-96", 96, 16, workers=1)
    small = bench.subset(big, tmp_path / "jpeg16-48", 48, 16)
    assert len(list(big.rglob("*.jpg"))) == 96 and len(list(small.rglob("*.jpg"))) == 48
    assert len({p.parent.name for p in big.rglob("*.jpg")}) == 9  # one class per embedded photo
    shards, _ = bench.shards(small, tmp_path / "shards", 16, "uint8")
    base = {
        "size": 16,
        "workers": 0,
        "batch_size": 8,
        "warmup": 1,
        "batches": 2,
        "index_cache": str(tmp_path),
    }
    runs = [
        {**base, "kind": "plain", "root": str(big), "images": 96},
        {**base, "kind": "folder", "root": str(big), "images": 96},
        {**base, "kind": "folder", "root": str(big), "images": 96, "first_batch": "before"},
        {**base, "kind": "stream", "format": "uint8", "root": str(shards), "images": 48},
    ]
    results = [bench.measure(spec) for spec in runs]
    for r in results:
        assert r["images_per_s"] > 0 and r["first_batch_s"] > 0 and r["rss_mb"] > 0 and r["processes"] >= 1
    assert [row["loader"] for row in bench.table(results)] == [
        "plain",
        "folder",
        "folder, first batch before",
        "stream-uint8",
    ]
    goals = bench.summarize(results, 96, 48, 0)
    assert any(g["measure"].startswith("stream-uint8 / plain") for g in goals)
    # the stream's uint8 batches are timed scaled, as the training step sees them
    stream = bench.make_loader(runs[-1])
    assert next(iter(stream))[0].dtype == torch.uint8
    images = next(bench.endless(stream, "stream"))
    assert images.dtype == torch.float32 and images.min() >= -1 and images.max() <= 1


def test_bench_data_summary_survives_a_run_too_short_to_time():
    """CPU time counts in 10 ms clock ticks, so a tiny run can read 0 ms/image: the summary shows
    no ratio for it instead of dividing by zero."""
    bench = bench_module("bench_data")
    run = {"size": 16, "workers": 0, "images": 8, "images_per_s": 100.0, "rss_mb": 10.0, "pss_mb": 5.0}
    results = [
        {**run, "kind": "plain", "cpu_ms_per_image": 2.0},
        {**run, "kind": "stream", "format": "uint8", "cpu_ms_per_image": 0.0},
    ]
    goals = bench.summarize(results, 8, 8, 0)
    cost = [g for g in goals if g["measure"].startswith("plain / stream-uint8 CPU")]
    assert len(cost) == 1 and cost[0]["value"] == "n/a (too short to time)"
    assert math.isnan(bench.ratio(1.0, 0.0)) and bench.ratio(3.0, 2.0) == 1.5

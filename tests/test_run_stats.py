"""The run-statistics callback: the clock skips interruptions, parameters count by role, a run records both."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ganforge.callbacks import run_stats
from ganforge.callbacks.run_stats import STATS_FILE, RunStats, parameter_counts, role_counts
from ganforge.report import build_report
from ganforge.train import build_module, train


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Logged:
    """Stands in for the LightningModule: a device and ``log_dict``."""

    device = torch.device("cpu")

    def __init__(self):
        self.logged: dict[str, float] = {}

    def log_dict(self, values, **kwargs):
        self.logged.update({k: float(v) for k, v in values.items()})


def test_clock_counts_training_batches_only(monkeypatch, tmp_path):
    clock = _Clock()
    monkeypatch.setattr(run_stats.time, "perf_counter", clock)
    cb, module = RunStats(str(tmp_path), warmup_iters=1), _Logged()

    def batch(start: float, end: float) -> None:
        clock.now = start
        cb.on_train_batch_start(None, module, None, 0)
        clock.now = end
        cb.on_train_batch_end(None, module, None, None, 0)

    batch(0.0, 1.0)  # warm-up: not timed
    batch(1.0, 3.0)  # timed from the end of the previous batch: loading included
    batch(3.0, 5.0)
    clock.now = 5.5  # callbacks after the last batch, until validation starts
    cb.on_validation_start(None, module)
    batch(100.0, 102.0)  # 95 s of validation are not counted; timed from this batch's start
    clock.now = 102.2
    cb.on_train_epoch_end(SimpleNamespace(world_size=1), module)
    assert cb.timed_iters == 3 and cb.seconds == pytest.approx(4.5 + 2.2)
    assert module.logged["perf/sec_per_iter"] == pytest.approx(6.7 / 3)
    assert module.logged["perf/peak_mem_mb"] > 0


class _Objective(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp_heads = nn.Linear(4, 4)  # trained, like CUT's PatchNCE projection heads
        self.features = nn.Linear(4, 2).requires_grad_(False)  # frozen, like a perceptual network


class _Scheme(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator, self.generator_ba = nn.Linear(3, 5), nn.Linear(5, 3)  # 20 and 18
        self.discriminator, self.discriminator_a = nn.Linear(5, 1), nn.Linear(3, 1)  # 6 and 4
        self.generator_ema = nn.Linear(3, 5).requires_grad_(False)  # 20, not trained
        self.objective = _Objective()  # 20 trained + 10 frozen
        self.shared = self.discriminator  # a second name for one network counts once
        self.scale = nn.Parameter(torch.ones(2))


def test_parameters_count_by_module_and_role():
    scheme = _Scheme()
    counts = parameter_counts(scheme)
    assert counts["generator_ema"] == {"params": 20, "trained": 0}
    assert counts["objective"] == {"params": 30, "trained": 20} and "shared" not in counts
    assert counts["(own)"] == {"params": 2, "trained": 2}
    assert role_counts(counts) == {"generator": 38, "discriminator": 10, "other": 22, "total": 70}
    # what the optimizers hold decides what is trained, whatever requires_grad says
    trained = {id(p) for p in scheme.generator.parameters()}
    assert role_counts(parameter_counts(scheme, trained))["total"] == 20


def test_a_run_logs_perf_and_writes_run_stats(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        [
            "data=digits",
            "data.img_size=16",
            "trainer.max_epochs=2",
            "++trainer.limit_train_batches=3",
            "callbacks.run_stats.warmup_iters=2",
        ]
    )
    train(cfg)
    run = tmp_path / "run"
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("perf/sec_per_iter")]
    assert len(rows) == 2 and all(float(r["perf/sec_per_iter"]) > 0 for r in rows)  # one per epoch
    assert all(float(r["perf/peak_mem_mb"]) > 0 for r in rows)
    stats = json.loads((run / STATS_FILE).read_text())
    assert stats["timed_iters"] == 4 and stats["memory"] == "rss" and stats["device"] == "cpu"
    assert stats["sec_per_iter"] == pytest.approx(float(rows[-1]["perf/sec_per_iter"]))
    module = build_module(cfg, None)
    g = sum(p.numel() for p in module.generator.parameters())
    d = sum(p.numel() for p in module.discriminator.parameters())
    assert stats["params"]["by_role"] == {"generator": g, "discriminator": d, "other": 0, "total": g + d}
    assert stats["params"]["by_module"]["generator_ema"] == {"params": g, "trained": 0}
    report = build_report(run, plots=False)  # the report reads both back
    assert (
        "| perf/sec_per_iter | perf/peak_mem_mb | params/generator (M) |" in report["report_md"].read_text()
    )
    summary = next(csv.DictReader(open(report["report_csv"])))
    assert float(summary["params/total:final_mean"]) == g + d
    assert float(summary["perf/sec_per_iter:final_mean"]) == pytest.approx(stats["sec_per_iter"])

"""``ganforge-report`` on run folders written by hand: known values in, known table out."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ganforge.report import ReportError, build_report, main
from ganforge.reporting.runs import find_runs
from ganforge.reporting.summary import group_runs, metric_goal, summarize


def make_run(
    folder: Path,
    overrides: list[str],
    seed: int,
    rows: list[dict],
    protocol_id: str | None = None,
    samples: bool = True,
    config: dict | None = None,
) -> Path:
    """A run folder as training leaves it: config.yaml, .hydra/overrides.yaml, metrics.csv, samples/last.png."""
    folder.mkdir(parents=True)
    paths = {"output_dir": str(folder)}
    extra = {"callbacks": {"samples": {"dirpath": f"{folder}/samples"}}, **(config or {})}
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "name": "t", "paths": paths, **extra}))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    keys = ["epoch", "step", *sorted({k for r in rows for k in r if k != "step"})]
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({"epoch": 0, **row})
    if protocol_id:
        (folder / "metrics_protocol.json").write_text(
            json.dumps({"protocol_id": protocol_id, "protocol": {"n": 1}})
        )
    if samples:
        (folder / "samples").mkdir()
        Image.fromarray(np.full((10, 10), seed * 40, np.uint8)).save(folder / "samples" / "last.png")
    return folder


def fid_rows(values: list[float], loss: float = 1.0) -> list[dict]:
    rows = [{"step": 10 * i + 9, "train/g_loss": loss + i} for i in range(len(values))]
    rows += [{"step": 10 * i + 9, "val/fid": v} for i, v in enumerate(values)]
    return rows


def test_metric_goal_rule():
    assert [metric_goal(m) for m in ("val/fid", "val/kid_mean", "train/d_loss", "train/g_loss")] == [
        "min"
    ] * 4
    assert [metric_goal(m) for m in ("val/is_mean", "val/precision", "val/recall", "val/d_acc_real")] == [
        "max"
    ] * 4
    assert metric_goal("val/kid_std") is None and metric_goal("train/d_real") is None


def test_summarize_final_best_and_nan():
    steps = np.array([1.0, 2.0, 3.0, 4.0])
    s = summarize(np.array([5.0, 2.0, np.nan, 3.0]), steps, "min")
    assert (s.final, s.best, s.best_step) == (3.0, 2.0, 2.0)
    s = summarize(np.array([5.0, 2.0, 7.0, np.nan]), steps, "max")
    assert math.isnan(s.final) and (s.best, s.best_step) == (7.0, 3.0)  # a diverged run ends on NaN


def test_report_groups_seeds_and_writes_every_file(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", ["loss=ns", "data=digits"], 0, fid_rows([30.0, 20.0, 24.0]))
    make_run(sweep / "1", ["loss=ns", "data=digits"], 1, fid_rows([28.0, 26.0]))
    make_run(sweep / "2", ["loss=hinge", "data=digits"], 0, fid_rows([10.0, 12.0], loss=3.0))
    make_run(sweep / "10", ["loss=hinge", "data=digits"], 1, fid_rows([float("nan")], loss=3.0))
    written = build_report(sweep)

    groups = {r["group"]: r for r in csv.DictReader(open(written["report_csv"]))}
    assert set(groups) == {"loss=ns", "loss=hinge"}
    ns = groups["loss=ns"]
    assert float(ns["val/fid:final_mean"]) == pytest.approx(25.0)  # mean of 24 and 26
    assert float(ns["val/fid:final_std"]) == pytest.approx(np.std([24.0, 26.0], ddof=1))
    assert float(ns["val/fid:best_mean"]) == pytest.approx(23.0)  # mean of 20 and 26
    assert (ns["runs"], ns["seeds"]) == ("2", "0 1")
    hinge = groups["loss=hinge"]
    assert float(hinge["val/fid:final_mean"]) == 12.0 and hinge["val/fid:n"] == "1"  # the NaN run is left out
    runs = list(csv.DictReader(open(written["runs_csv"])))
    assert [r["run"] for r in runs] == ["0", "1", "2", "10"]  # numeric job order
    assert float(runs[1]["val/fid:best"]) == 26.0 and float(runs[1]["val/fid:best_step"]) == 19.0

    md = written["report_md"].read_text()
    assert "| loss=ns | 2 | 0,1 | 25 ± 1.414 | 23 ± 4.243 |" in md
    assert "| loss=hinge | 2 | 0,1 | 12 (n=1) |" in md
    assert "`data=digits`" in md.split("## Groups")[0]  # shared overrides listed once, above the table
    for name in ("plots/val_fid.png", "plots/train_g_loss.png", "samples_mosaic.png"):
        assert (sweep / name).is_file() and f"]({name})" in md


def test_different_protocols_are_flagged_and_not_averaged(tmp_path):
    make_run(tmp_path / "a", ["loss=ns"], 0, fid_rows([10.0]), protocol_id="aaaa0001")
    make_run(tmp_path / "b", ["loss=ns"], 1, fid_rows([12.0]), protocol_id="aaaa0001")
    make_run(tmp_path / "c", ["loss=ns"], 2, fid_rows([90.0]), protocol_id="bbbb0002")
    # the id logged as a numeric column is read when the JSON file is absent
    make_run(tmp_path / "d", ["loss=ns"], 3, [*fid_rows([80.0]), {"step": 9, "val/protocol_id": 0xBBBB0002}])
    groups = group_runs(find_runs(tmp_path))
    assert [(g.protocol_id, len(g.runs), g.flagged) for g in groups] == [
        ("aaaa0001", 2, False),
        ("bbbb0002", 2, True),
    ]
    assert groups[0].stats("val/fid") == (11.0, pytest.approx(np.sqrt(2)), 2)
    assert "val/protocol_id" not in find_runs(tmp_path / "d")[0].metrics  # an id is not a metric
    md = build_report(tmp_path, out=tmp_path / "r", plots=False)["report_md"].read_text()
    assert "2 different metric protocols" in md and "⚠ bbbb0002" in md


def test_runs_without_metrics_or_samples_and_no_runs(tmp_path):
    make_run(tmp_path / "ok", [], 0, fid_rows([5.0]), samples=False)
    make_run(tmp_path / "empty", [], 1, [])
    (tmp_path / "ok" / "wandb" / "files").mkdir(parents=True)  # a logger's config.yaml is not a run
    (tmp_path / "ok" / "wandb" / "files" / "config.yaml").write_text("a: 1\n")
    written = build_report(tmp_path)
    md = written["report_md"].read_text()
    assert "2 runs in 1 groups" in md and "Runs without any logged metric: empty" in md
    assert "| all runs | 2 | 1,0 | 5 (n=1) |" in md  # runs in path order: empty, ok
    with pytest.raises(ReportError, match="no runs under"):
        build_report(tmp_path / "ok" / "wandb")


def test_cli_errors_and_readme_block(tmp_path, capsys):
    make_run(tmp_path / "runs" / "0", ["loss=ns"], 0, fid_rows([7.0]))
    readme = tmp_path / "README.md"
    readme.write_text("# exp\n<!-- report -->\nold table\n<!-- /report -->\ntail\n")
    main(
        [str(tmp_path / "runs"), f"out={tmp_path / 'o'}", f"readme={readme}", "metrics=val/*", "plots=false"]
    )
    text = readme.read_text()
    assert "old table" not in text and "| all runs | 1 | 0 | 7 | 7 |" in text and text.endswith("tail\n")
    assert not (tmp_path / "o" / "plots").exists()
    for argv, message in ([[], "exactly one folder"], [[str(tmp_path), "colour=red"], "unknown argument"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_same_overrides_but_different_configs_are_not_averaged(tmp_path):
    """An experiment file edited between two sweeps: equal overrides, different resolved configs."""
    make_run(tmp_path / "old" / "0", ["experiment=e"], 0, fid_rows([30.0]), config={"model": {"width": 32}})
    make_run(tmp_path / "old" / "1", ["experiment=e"], 1, fid_rows([34.0]), config={"model": {"width": 32}})
    make_run(tmp_path / "new" / "0", ["experiment=e"], 0, fid_rows([20.0]), config={"model": {"width": 64}})
    new, old = group_runs(find_runs(tmp_path))  # in path order: new/ before old/
    assert [len(new.runs), len(old.runs)] == [1, 2]  # run folders differ, yet the two old runs group
    assert old.stats("val/fid") == (32.0, pytest.approx(np.sqrt(8)), 2)
    assert old.label.startswith("all runs [config ") and old.label != new.label

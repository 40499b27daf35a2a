"""``ganforge-report`` on run folders written by hand: known values in, known table out."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ganforge.report import ReportError, build_report, main
from ganforge.reporting.runs import find_runs
from ganforge.reporting.summary import baseline_of, group_runs, metric_goal, parse_goals, summarize


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
    names = ["loss=ns seed=0", "loss=ns seed=1", "loss=hinge seed=0", "loss=hinge seed=1"]
    assert [r["name"] for r in runs] == names  # what differs between the runs, as the loggers name them


def test_html_report_is_one_self_contained_sortable_page(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", ["loss=ns"], 0, fid_rows([30.0, 20.0]), protocol_id="aaaa0001")
    make_run(sweep / "1", ["loss=hinge"], 0, fid_rows([12.0]), protocol_id="aaaa0001")
    make_run(sweep / "2", ["loss=hinge"], 1, fid_rows([14.0]), protocol_id="bbbb0002")
    written = build_report(sweep)
    page = written["report_html"].read_text()
    figures = [p for k, p in written.items() if k.startswith("plot:") or k == "mosaic"]
    for figure in figures:  # every figure inlined, byte for byte
        assert base64.b64encode(figure.read_bytes()).decode() in page
    assert page.count('src="data:image/png;base64,') == len(figures) == 3
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []  # nothing loaded from anywhere
    assert page.count('<table class="sortable"') == 2 and 'addEventListener("click"' in page
    assert '<p class="warn">⚠ Runs were measured under 2 different metric protocols' in page
    assert ">⚠ bbbb0002</td>" in page.split('id="runs"')[0]  # the groups table flags the odd protocol
    runs_table = page.split('id="runs"')[1]
    assert [m for m in re.findall(r"<tr><td class=text>([^<]*)</td>", runs_table)] == [
        "loss=ns seed=0",
        "loss=hinge seed=0",
        "loss=hinge seed=1",
    ]


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


# ----------------------------------------------------------------- method comparisons (translation)
METHODS = {  # model -> (PSNR per evaluation, FID per evaluation, trained parameters by role)
    "cyclegan": ([10.0, 14.0, 12.0], [50.0, 40.0, 45.0], {"generator": 2_000_000, "discriminator": 600_000}),
    "cut": ([11.0, 13.0, 16.0], [30.0, 35.0, 38.0], {"generator": 1_000_000, "discriminator": 300_000}),
}


def translation_rows(psnr: list[float], fid: list[float], seed: int) -> list[dict]:
    """Three epochs of 100 iterations: losses, then per epoch end the scores, baselines and perf."""
    rows = []
    for epoch, (p, f) in enumerate(zip(psnr, fid, strict=True)):
        step = 100 * epoch + 99
        rows.append({"epoch": epoch, "step": step, "train/g_loss": 2.0 - epoch})
        rows.append(
            {
                "epoch": epoch,
                "step": step,
                "val/psnr": p + seed,
                "val/psnr_identity": 9.0,  # the untranslated input: the same at every evaluation
                "val/psnr_mean_target": 8.5,
                "val/fid": f + seed,
            }
        )
        rows.append(
            {
                "epoch": epoch,
                "step": step,
                "perf/sec_per_iter": 0.3 - 0.05 * epoch + 0.01 * seed,
                "perf/peak_mem_mb": 1000.0 + 10 * seed,
            }
        )
    return rows


def make_comparison(root: Path, run_stats: bool = True) -> Path:
    """CycleGAN and CUT, 3 seeds each, as `-m model=cyclegan,cut loss=...` leaves them."""
    for index, (model, (psnr, fid, params)) in enumerate(METHODS.items()):
        for seed in range(3):
            run = make_run(
                root / str(3 * index + seed),
                [f"model={model}", f"loss={model}"],
                seed,
                translation_rows(psnr, fid, seed),
            )
            if run_stats:
                roles = {**params, "other": 500_000 if model == "cut" else 0}  # CUT's MLP heads
                roles["total"] = sum(roles.values())
                stats = {
                    "params": {"by_role": roles},
                    "sec_per_iter": 9.9,
                    "peak_mem_mb": 9.9,
                    "device": "cpu",
                }
                (run / "run_stats.json").write_text(json.dumps(stats))
    return root


def test_metric_goal_of_translation_metrics_and_baselines():
    assert [metric_goal(m) for m in ("val/psnr", "val/ssim", "val/label_acc", "val/psnr_identity")] == [
        "max"
    ] * 4
    assert [metric_goal(m) for m in ("val/l1", "val/cycle_a", "train/nce", "val/kid_mean")] == ["min"] * 4
    assert metric_goal("perf/sec_per_iter") is None and metric_goal("params/total") is None
    goals = {"val/cycle_*": "max", "val/fid": None}  # overrides: the first matching pattern wins
    assert metric_goal("val/cycle_a", goals) == "max" and metric_goal("val/fid", goals) is None
    assert metric_goal("val/psnr", goals) == "max"
    assert (
        baseline_of("val/psnr_identity") == "val/psnr" and baseline_of("val/ssim_mean_target") == "val/ssim"
    )
    assert baseline_of("train/nce_identity") is None and baseline_of("val/psnr") is None
    assert parse_goals("val/cycle_*:min, val/d_real:none,val/x:MAX") == {
        "val/cycle_*": "min",
        "val/d_real": None,
        "val/x": "max",
    }
    with pytest.raises(ValueError, match="min|max|none"):
        parse_goals("val/fid:lower")


def test_method_comparison_best_final_baselines_and_run_stats(tmp_path):
    written = build_report(make_comparison(tmp_path / "sweep"), plots=True)
    groups = {r["group"]: r for r in csv.DictReader(open(written["report_csv"]))}
    assert set(groups) == {"model=cyclegan", "model=cut"}  # loss=<same as model> adds nothing
    cyc, cut = groups["model=cyclegan"], groups["model=cut"]
    # PSNR: higher is better. CycleGAN peaks at epoch 1 (14 + seed) and ends lower (12 + seed).
    assert [float(cyc[f"val/psnr:{s}"]) for s in ("final_mean", "final_std", "best_mean", "best_std")] == [
        13.0,
        1.0,
        15.0,
        1.0,
    ]
    assert (float(cyc["val/psnr:best_step_mean"]), float(cyc["val/psnr:best_epoch_mean"])) == (199.0, 1.0)
    assert float(cyc["val/psnr:best_step_std"]) == 0.0 and cyc["val/psnr:n"] == "3"
    # FID: lower is better. CUT is best at its first evaluation (30 + seed), worst at the end.
    assert (float(cut["val/fid:best_mean"]), float(cut["val/fid:final_mean"])) == (31.0, 39.0)
    assert (float(cut["val/fid:best_step_mean"]), float(cut["val/fid:best_epoch_mean"])) == (99.0, 0.0)
    assert float(cut["val/psnr_identity:final_mean"]) == 9.0
    # perf: metrics.csv's per-epoch values win over the file's; parameters come from run_stats.json
    assert float(cut["perf/sec_per_iter:final_mean"]) == pytest.approx(0.21)
    assert float(cut["perf/sec_per_iter:final_std"]) == pytest.approx(0.01)
    assert float(cut["perf/peak_mem_mb:final_mean"]) == 1010.0
    assert [
        float(cut[f"params/{r}:final_mean"]) for r in ("generator", "discriminator", "other", "total")
    ] == [
        1e6,
        3e5,
        5e5,
        1.8e6,
    ]
    runs = {r["run"]: r for r in csv.DictReader(open(written["runs_csv"]))}
    assert float(runs["4"]["val/fid:best"]) == 31.0 and float(runs["4"]["val/fid:best_epoch"]) == 0.0

    md = written["report_md"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| group |"))
    assert (
        "| val/psnr (final) | val/psnr (best) | val/psnr (best iter) "
        "| val/psnr_identity (baseline) | val/psnr_mean_target (baseline) |" in header
    )
    assert header.endswith(
        "| train/g_loss (final) | perf/sec_per_iter | perf/peak_mem_mb | params/generator (M) "
        "| params/discriminator (M) | params/other (M) | params/total (M) |"
    )
    assert "val/psnr_identity (final)" not in header  # a baseline has no column of its own
    assert "`perf/*` measured on: cpu (6 runs)." in md
    row = next(line for line in md.splitlines() if line.startswith("| model=cut |"))
    assert row.startswith(
        "| model=cut | 3 | 0,1,2 | 39 ± 1 | 31 ± 1 | 99 | 17 ± 1 | 17 ± 1 | 299 | 9 | 8.5 |"
    )
    assert row.endswith("| 0.21 ± 0.01 | 1010 ± 10 | 1 | 0.3 | 0.5 | 1.8 |")
    assert (tmp_path / "sweep" / "plots" / "perf_sec_per_iter.png").is_file()
    assert not (tmp_path / "sweep" / "plots" / "params_total.png").exists()  # a count has no curve


def test_best_false_goals_and_run_stats_without_perf_columns(tmp_path, capsys):
    sweep = make_comparison(tmp_path / "sweep")
    for run in sweep.iterdir():  # runs from before the perf columns: the file's final figures stand in
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        kept = [k for k in rows[0] if not k.startswith("perf/")]
        with open(run / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=kept, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(r for r in rows if any(r[k] for k in kept if k not in ("epoch", "step")))
    stats = json.loads((sweep / "0" / "run_stats.json").read_text())
    (sweep / "0" / "run_stats.json").write_text(json.dumps({**stats, "device": "NVIDIA H200"}))
    main([str(sweep), f"out={tmp_path / 'o'}", "best=false", "goals=val/fid:max", "plots=false"])
    md = (tmp_path / "o" / "report.md").read_text()
    assert "measured on: cpu (5 runs), NVIDIA H200 (1 run) (⚠ not comparable)" in md
    assert "(best" not in md and "| val/fid (final) | val/psnr (final) | val/psnr_identity (baseline) |" in md
    groups = {r["group"]: r for r in csv.DictReader(open(tmp_path / "o" / "report.csv"))}
    assert float(groups["model=cut"]["val/fid:best_mean"]) == 39.0  # goals=val/fid:max: the largest FID
    assert float(groups["model=cut"]["perf/sec_per_iter:final_mean"]) == 9.9  # from run_stats.json
    with pytest.raises(SystemExit):
        main([str(sweep), "goals=val/fid:lower"])
    assert "val/fid:lower" in capsys.readouterr().err


def test_group_labels_of_method_comparisons(tmp_path):
    rows = fid_rows([1.0])
    make_run(tmp_path / "a" / "0", ["model=cut", "loss=cut", "data=ink"], 0, rows)
    make_run(tmp_path / "a" / "1", ["model=cut", "loss=fastcut", "data=ink"], 0, rows)
    make_run(tmp_path / "a" / "2", ["model=cyclegan", "loss=cyclegan", "data=ink"], 0, rows)
    assert [g.label for g in group_runs(find_runs(tmp_path / "a"))] == [
        "model=cut loss=cut",  # loss is not model's value in every run: both stay
        "model=cut loss=fastcut",
        "model=cyclegan loss=cyclegan",
    ]
    make_run(tmp_path / "b" / "0", ["loss=cyclegan", "model=cyclegan", "data=photos"], 0, rows)
    make_run(tmp_path / "b" / "1", ["model=pix2pix", "loss=pix2pix", "data=pairs"], 0, rows)
    make_run(
        tmp_path / "b" / "2",
        ["trainer.max_epochs=5", "+callbacks.run_stats.warmup_iters=0"],  # the defaults (no model, loss)
        1,
        rows,
    )
    labels = [g.label for g in group_runs(find_runs(tmp_path / "b"))]
    assert labels == [
        "model=cyclegan data=photos",
        "model=pix2pix data=pairs",
        "trainer.max_epochs=5",  # run statistics settings do not name a group
    ]


def test_select_reads_every_metric_at_the_selection_metrics_best_evaluation(tmp_path, capsys):
    # val/label_acc_select peaks at step 20 in seed 0 and at step 30 in seed 1 (ties: the first);
    # the held-out val/label_acc is read there, not at its own best.
    select = {0: [0.80, 0.90, 0.85, 0.90], 1: [0.70, 0.75, 0.95, 0.90]}
    held_out = {0: [0.82, 0.91, 0.95, 0.88], 1: [0.72, 0.93, 0.89, 0.90]}
    for seed in (0, 1):
        rows = [
            {"step": 10 * (i + 1), "val/label_acc_select": s, "val/label_acc": v}
            for i, (s, v) in enumerate(zip(select[seed], held_out[seed], strict=True))
        ]
        rows.append({"step": 45, "train/g_loss": 1.0})  # a row without the selection metric
        make_run(tmp_path / "sweep" / str(seed), ["model=cyclegan"], seed, rows, samples=False)
    main([str(tmp_path / "sweep"), f"out={tmp_path / 'o'}", "select=val/label_acc_select", "plots=false"])
    md = (tmp_path / "o" / "report.md").read_text()
    assert "val/label_acc (at best val/label_acc_select)" in md
    runs = {r["seed"]: r for r in csv.DictReader(open(tmp_path / "o" / "runs.csv"))}
    assert (
        float(runs["0"]["val/label_acc:selected"]) == 0.91
        and float(runs["1"]["val/label_acc:selected"]) == 0.89
    )
    assert float(runs["0"]["val/label_acc:best"]) == 0.95  # the held-out's own best, for comparison
    group = next(csv.DictReader(open(tmp_path / "o" / "report.csv")))
    assert float(group["val/label_acc:selected_mean"]) == pytest.approx(0.90)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "sweep"), "select=val/fid_select"])
    assert "select=val/fid_select was not logged" in capsys.readouterr().err

"""``ganforge-report``: tables, curves and a sample mosaic from finished runs, offline.

Usage:
    ganforge-report outputs/loss_seeds_digits/multirun_2026-11-25_08-34-13
    ganforge-report outputs                                  # every run under outputs/
    ganforge-report <sweep> out=paper/ metrics=val/fid,val/is_mean
    ganforge-report <sweep> readme=experiments/loss_seeds_digits/README.md
    ganforge-report <sweep> metrics=val/psnr,val/label_acc,perf/*,params/* best=true
    ganforge-report <sweep> goals=val/cycle_*:min,val/d_real:none
    ganforge-report <sweep> select=val/label_acc_select   # values at each run's best selection-split evaluation

Finds every run folder below the given folder (``config.yaml`` with ``metrics.csv`` or
``.hydra/``), groups runs by their overrides without the seed (and by metric protocol id),
and writes into ``out`` (default: the given folder):

- ``report.html``: the same as one self-contained page (tables sortable by any column, figures
  inlined) that opens in any browser without a server;
- ``report.md``: groups with mean ± std across seeds, every run, the figures. Per metric with a
  better direction: its final and best value and the iteration of the best (``best=false``:
  final only), its ``_identity`` / ``_mean_target`` baselines beside it; then seconds per
  iteration, peak memory and parameters (``run_stats.json``). Which direction is better comes
  from :func:`~ganforge.reporting.summary.metric_goal`; ``goals=`` overrides it; with
  ``select=<metric>`` each metric also gets its value at the evaluation where that metric was
  best (model selection on one split, scores on another);
- ``report.csv`` (one row per group) and ``runs.csv`` (one row per run), every metric;
- ``plots/<metric>.png``: each metric against training iterations;
- ``samples_mosaic.png``: each run's ``samples/last.png``, labelled.

``readme=`` also rewrites the table between ``<!-- report -->`` and ``<!-- /report -->`` in an
experiment README. Nothing here reads the network or the training code: it works on any copy
of the run folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ganforge.reporting.figures import metric_filename, plot_metric, samples_mosaic
from ganforge.reporting.html import report_html
from ganforge.reporting.runs import PARAMS_PREFIX, find_runs
from ganforge.reporting.summary import group_runs, parse_goals
from ganforge.reporting.tables import (
    DEFAULT_TABLE_METRICS,
    all_metrics,
    groups_markdown,
    replace_block,
    report_markdown,
    select_metrics,
    write_groups_csv,
    write_runs_csv,
)

USAGE = (
    "usage: ganforge-report <sweep or outputs folder> [out=<folder>] [metrics=val/*,train/*loss] "
    "[best=true] [goals=<metric>:min|max|none,...] [select=<metric>] [readme=<README.md>] [plots=true]"
)
OPTIONS = {
    "out": None,
    "metrics": None,
    "best": "true",
    "goals": None,
    "select": None,
    "readme": None,
    "plots": "true",
}
FALSE = ("false", "0", "no")


class ReportError(ValueError):
    """Nothing to report on, or an argument is wrong; the message says which."""


def parse_args(argv: list[str]) -> tuple[Path, dict]:
    """One folder plus ``key=value`` options over :data:`OPTIONS`."""
    folders = [a for a in argv if "=" not in a]
    options = dict(OPTIONS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            continue
        if key not in OPTIONS:
            raise ReportError(f"unknown argument '{item}'. Valid keys: {', '.join(OPTIONS)}")
        options[key] = value
    if len(folders) != 1:
        raise ReportError("give exactly one folder: a sweep folder or an outputs folder")
    return Path(folders[0]), options


def build_report(
    root: str | Path,
    out: str | Path | None = None,
    metrics: list[str] | None = None,
    readme: str | Path | None = None,
    plots: bool = True,
    best: bool = True,
    goals: dict[str, str | None] | None = None,
    select: str | None = None,
) -> dict[str, Path]:
    """Write the report of every run under ``root``; returns the written files by kind.

    Args:
        root: a sweep folder, an experiment's outputs folder, or ``outputs/``.
        out: where to write (default ``root``).
        metrics: glob patterns of the metrics in the Markdown tables (default
            :data:`~ganforge.reporting.tables.DEFAULT_TABLE_METRICS`); CSVs and plots hold every metric.
        readme: an experiment README whose report block is replaced by the groups table.
        plots: draw ``plots/*.png`` and ``samples_mosaic.png``.
        best: show each metric's best value and its iteration beside the final one.
        goals: overrides of the better direction, glob pattern -> ``"min"``, ``"max"`` or ``None``.
        select: a metric with a better direction; tables add every metric's value at the
            evaluation where it was best.

    Raises:
        ReportError: no run folder under ``root``.
    """
    root = Path(root).resolve()
    runs = find_runs(root)
    if not runs:
        raise ReportError(f"no runs under {root}: a run folder holds config.yaml and metrics.csv")
    out = Path(out).resolve() if out else root
    out.mkdir(parents=True, exist_ok=True)
    if select and not any(select in r.metrics for r in runs):
        raise ReportError(f"select={select} was not logged by any run under {root}")
    groups = group_runs(runs, goals, select)
    names = all_metrics(runs)
    shown = select_metrics(names, metrics or DEFAULT_TABLE_METRICS)
    written = {
        "runs_csv": write_runs_csv(groups, names, out / "runs.csv", root),
        "report_csv": write_groups_csv(groups, names, out / "report.csv"),
    }
    figures = []
    if plots:
        for name in (n for n in names if not n.startswith(PARAMS_PREFIX)):  # a count has no curve
            path = plot_metric(groups, name, out / "plots" / metric_filename(name))
            if path:
                written[f"plot:{name}"] = path
                figures.append(path.relative_to(out).as_posix())
        mosaic = samples_mosaic(groups, out / "samples_mosaic.png")
        if mosaic:
            written["mosaic"] = mosaic
            figures.insert(0, mosaic.relative_to(out).as_posix())
    report = out / "report.md"
    report.write_text(report_markdown(groups, runs, shown, root, figures, best))
    written["report_md"] = report
    page = out / "report.html"
    page.write_text(report_html(groups, runs, shown, root, [out / f for f in figures], best))
    written["report_html"] = page
    if readme:
        readme = Path(readme)
        readme.write_text(replace_block(readme.read_text(), groups_markdown(groups, shown, best)))
        written["readme"] = readme
    return written


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        root, options = parse_args(argv)
        written = build_report(
            root,
            out=options["out"],
            metrics=[m for m in options["metrics"].split(",") if m] if options["metrics"] else None,
            readme=options["readme"],
            plots=options["plots"].lower() not in FALSE,
            best=options["best"].lower() not in FALSE,
            goals=parse_goals(options["goals"]) if options["goals"] else None,
            select=options["select"],
        )
    except (ReportError, FileNotFoundError, ValueError) as err:
        print(f"ganforge-report: {err}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {written['report_html']} and {written['report_md']} ({len(written)} files)")


if __name__ == "__main__":
    main()

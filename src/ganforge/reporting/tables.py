"""The report's tables: per-run and per-group CSV files and a Markdown summary.

Markdown cells read ``mean ± std`` over the seeds of a group (``(n=k)`` is added when only
``k`` of its runs have a finite value, e.g. one diverged; no ``± 0`` where every seed agrees);
a single run shows its value alone. Per metric with a better direction the table shows the
*final* value (last logged), the *best* value over the run's evaluations and the iteration it
was reached at (*best iter*), then the metric's baselines where the runs logged them
(``<metric>_identity``, ``<metric>_mean_target``). Run statistics follow: ``perf/sec_per_iter``,
``perf/peak_mem_mb`` and the trained parameters ``params/<role>`` in millions.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ganforge.loggers.naming import COMPARISON_METRICS
from ganforge.reporting.runs import PARAMS_PREFIX, PARAMS_ROLES, RUN_STATS_PERF, Run
from ganforge.reporting.summary import (
    BASELINE_SUFFIXES,
    Group,
    baseline_of,
    common_overrides,
    metric_goal,
    varying_keys,
)

# Metrics shown in the Markdown tables unless ``metrics=`` says otherwise; the CSVs hold every metric.
DEFAULT_TABLE_METRICS = ("val/*", "test/*", "train/*loss", "perf/*", "params/*")
# Per-run statistics of a metric in the CSV files, in column order.
RUN_STATS = ("final", "best", "best_step", "best_epoch", "selected")


def all_metrics(runs: list[Run]) -> list[str]:
    """Every metric name any run logged: ``val/`` and ``test/`` (the comparison metrics FID, KID, IS,
    ... first, in :data:`~ganforge.loggers.naming.COMPARISON_METRICS` order), ``train/``, then the run
    statistics in the order of a method comparison (time, memory, generator, discriminator, other, total)."""
    names = {m for run in runs for m in run.metrics}
    order = [*RUN_STATS_PERF.values(), *(PARAMS_PREFIX + r for r in PARAMS_ROLES)]
    first = list(COMPARISON_METRICS)

    def key(name: str) -> tuple:
        if name in order:
            return (2, order.index(name), name)
        if name in first:
            return (0, first.index(name), name)
        return (
            0 if name.startswith(("val/", "test/")) else 1 if name.startswith("train/") else 2,
            len(first),
            name,
        )

    return sorted(names, key=key)


def select_metrics(names: list[str], patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Names matching any of the glob ``patterns`` (``val/*``), in the order of ``patterns``."""
    chosen: list[str] = []
    for pattern in patterns:
        chosen.extend(n for n in names if fnmatch(n, pattern) and n not in chosen)
    return chosen


def fmt(value: float) -> str:
    """Four significant digits (whole numbers from 10,000 on); an em dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.0f}" if 1e4 <= abs(value) < 1e12 else f"{value:.4g}"


@dataclass(frozen=True)
class Column:
    """One Markdown column: a statistic of a metric, its header and the factor values are shown in."""

    metric: str
    stat: str
    header: str
    scale: float = 1.0


def table_columns(groups: list[Group], metrics: list[str], best: bool = True) -> list[Column]:
    """The Markdown columns of ``metrics``.

    Validation and test metrics with a better direction (:func:`metric_goal` under the groups'
    goals) get ``final``, ``best`` and ``best iter`` columns (``final`` only when ``best`` is
    false); their baselines follow them; training values get ``final``; ``perf/*`` and
    ``params/*`` (in millions) their value. Groups with a selection metric (``select=``) add each
    metric's value at the evaluation where that metric was best.
    """
    goals = groups[0].goals if groups else {}
    select = groups[0].select if groups else None
    logged = {m for g in groups for r in g.runs for m in r.metrics}
    cols = []
    for m in metrics:
        if baseline_of(m) in metrics:
            continue  # shown beside its metric
        if m.startswith(PARAMS_PREFIX):
            cols.append(Column(m, "final", f"{m} (M)", 1e-6))
            continue
        if m.startswith("perf/"):
            cols.append(Column(m, "final", m))
            continue
        cols.append(Column(m, "final", f"{m} (final)"))
        if select and m != select and not m.startswith("train/"):
            cols.append(Column(m, "selected", f"{m} (at best {select})"))
        if best and metric_goal(m, goals) and not m.startswith("train/"):
            cols += [Column(m, "best", f"{m} (best)"), Column(m, "best_step", f"{m} (best iter)")]
        cols += [
            Column(b, "final", f"{b} (baseline)") for b in (m + s for s in BASELINE_SUFFIXES) if b in logged
        ]
    return cols


def cell(group: Group, column: Column) -> str:
    mean, std, n = group.stats(column.metric, column.stat)
    if n == 0:
        return "—"
    mean, std = mean * column.scale, std * column.scale
    text = fmt(mean) if math.isnan(std) or std == 0 else f"{fmt(mean)} ± {fmt(std)}"
    return text if n == len(group.runs) else f"{text} (n={n})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def groups_rows(
    groups: list[Group], metrics: list[str], best: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Header and one row per group: its label, number of runs, seeds and mean ± std of each column
    (:func:`table_columns`)."""
    cols = table_columns(groups, metrics, best)
    with_protocol = any(g.protocol_id for g in groups)
    header = ["group", "runs", "seeds", *(["protocol"] if with_protocol else [])]
    header += [c.header for c in cols]
    rows = []
    for g in groups:
        seeds = ",".join(str(r.seed) for r in g.runs if r.seed is not None) or "—"
        protocol = [(("⚠ " if g.flagged else "") + (g.protocol_id or "—"))] if with_protocol else []
        rows.append([g.label, str(len(g.runs)), seeds, *protocol, *(cell(g, c) for c in cols)])
    return header, rows


def groups_markdown(groups: list[Group], metrics: list[str], best: bool = True) -> str:
    """The groups table (:func:`groups_rows`) in Markdown."""
    return markdown_table(*groups_rows(groups, metrics, best))


def runs_rows(
    groups: list[Group], metrics: list[str], root: Path, best: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Header and one row per run: name, folder, group, seed and each column's value (:func:`table_columns`)."""
    cols = table_columns(groups, metrics, best)
    header = ["name", "run", "group", "seed", *[c.header for c in cols]]
    rows = []
    for g in groups:
        for run in g.runs:
            summary = g.summary(run)
            values = [
                fmt(getattr(summary[c.metric], c.stat) * c.scale) if c.metric in summary else "—"
                for c in cols
            ]
            seed = "—" if run.seed is None else str(run.seed)
            rows.append([run.name, _rel(run.path, root), g.label, seed, *values])
    return header, rows


def runs_markdown(groups: list[Group], metrics: list[str], root: Path, best: bool = True) -> str:
    """The runs table (:func:`runs_rows`) in Markdown."""
    return markdown_table(*runs_rows(groups, metrics, root, best))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def write_runs_csv(groups: list[Group], metrics: list[str], path: Path, root: Path) -> Path:
    """``runs.csv``: per run its folder, name, group, protocol, config digest, overrides and
    ``<metric>:final|best|best_step|best_epoch``."""
    header = ["run", "name", "group", "seed", "protocol_id", "config_digest", "overrides"]
    header += [f"{m}:{s}" for m in metrics for s in RUN_STATS]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in groups:
            for run in g.runs:
                summary = g.summary(run)
                row = [
                    _rel(run.path, root),
                    run.name,
                    g.label,
                    run.seed,
                    run.protocol_id or "",
                    run.config_digest,
                    " ".join(run.overrides),
                ]
                for m in metrics:
                    s = summary.get(m)
                    row += [getattr(s, stat) for stat in RUN_STATS] if s else [""] * len(RUN_STATS)
                writer.writerow(row)
    return path


def write_groups_csv(groups: list[Group], metrics: list[str], path: Path) -> Path:
    """``report.csv``: per group ``<metric>:<stat>_mean|<stat>_std`` for final, best, best_step and
    best_epoch, and ``<metric>:n`` (runs with a finite final value)."""
    header = ["group", "runs", "seeds", "protocol_id", "config_digest", "flagged"]
    for m in metrics:
        header += [f"{m}:{s}_{x}" for s in RUN_STATS for x in ("mean", "std")] + [f"{m}:n"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in groups:
            seeds = " ".join(str(r.seed) for r in g.runs)
            row = [g.label, len(g.runs), seeds, g.protocol_id or "", g.config_digest, int(g.flagged)]
            for m in metrics:
                for stat in RUN_STATS:
                    row += g.stats(m, stat)[:2]
                row.append(g.stats(m, "final")[2])
            writer.writerow(row)
    return path


def report_notes(groups: list[Group], runs: list[Run], root: Path) -> list[str]:
    """The paragraphs above the tables (Markdown): counts, shared overrides, what differs, protocol
    and device warnings, runs without metrics."""
    notes = [f"{len(runs)} runs in {len(groups)} groups."]
    shared = common_overrides(runs)
    if shared:
        notes.append("Overrides common to all runs: `" + " ".join(shared) + "`")
    varying = varying_keys(runs)
    if varying:
        notes.append("Groups differ in: " + ", ".join(f"`{k}`" for k in varying) + " (seeds are averaged).")
    protocols = sorted({r.protocol_id for r in runs if r.protocol_id})
    if len(protocols) > 1:
        notes.append(
            f"> ⚠ Runs were measured under {len(protocols)} different metric protocols "
            f"({', '.join(protocols)}): their metrics are not comparable and are never averaged together. "
            "Groups marked ⚠ use a protocol other than the most common one."
        )
    elif protocols:
        notes.append(f"Metric protocol: `{protocols[0]}`.")
    devices = Counter(r.device for r in runs if r.device)
    if devices:
        where = ", ".join(f"{d} ({n} run{'s' * (n > 1)})" for d, n in devices.most_common())
        notes.append(
            f"`perf/*` measured on: {where}" + (" (⚠ not comparable)" if len(devices) > 1 else "") + "."
        )
    no_metrics = [_rel(r.path, root) for r in runs if not r.metrics]
    if no_metrics:
        notes.append("Runs without any logged metric: " + ", ".join(no_metrics))
    return notes


def report_markdown(
    groups: list[Group],
    runs: list[Run],
    metrics: list[str],
    root: Path,
    figures: list[str],
    best: bool = True,
) -> str:
    """The whole ``report.md``: source, shared overrides, protocol warnings, tables and figures."""
    lines = [f"# Report: {root}"]
    for note in report_notes(groups, runs, root):
        lines += ["", note]
    lines += ["", "## Groups (mean ± std across seeds)", "", groups_markdown(groups, metrics, best)]
    lines += ["", "## Runs", "", runs_markdown(groups, metrics, root, best)]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def replace_block(
    text: str, block: str, start: str = "<!-- report -->", end: str = "<!-- /report -->"
) -> str:
    """Put ``block`` between the ``start`` and ``end`` markers of ``text`` (an experiment README).

    Raises:
        ValueError: the markers are missing.
    """
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise ValueError(f"the README has no '{start}' ... '{end}' markers to write the table between")
    return f"{head}{start}\n{block.strip()}\n{end}{tail}"
